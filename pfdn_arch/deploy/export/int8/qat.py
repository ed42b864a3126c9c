"""PFDN with int8 simulated in float (NNCF's PyTorch fake quantization): what quantization-aware fine-tuning
(``models/qat_model.py``, ``options/qat_pfdn_x4.yml``) trains, and what ``basicsr export --int8`` turns into an
OpenVINO IR and a QDQ ONNX when the checkpoint holds it.

The network is the deployed PFDN in the graph form the runtimes run (its spec's ``graph_form``: no channel split per
block), quantized as the post-training quantization does (``ptq.py``: the same ops in float, the same ranges), so a
QAT checkpoint exports to the same int8 graph as PTQ, with trained weights and ranges.

A QAT checkpoint is BasicSR's ``{'params': ...}`` holding the float weights in the released layout (any PFDN loads
them) plus ``'int8'``: where NNCF put its quantizers (its own serializable config, as JSON text), their tensors, and a
record of how they were made. Plain strings and tensors only, so it loads with ``weights_only=True``.
"""
import enum
import importlib
import json
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ....archs import spec_for
from ....errors import CheckpointError
from ....files.checkpoints import QAT_KEY as KEY
from ...runtime.onnx_graph import export_module
from .config import need, settings


def fake_quantized(net: nn.Module, crops: List[np.ndarray]) -> nn.Module:
    """The deployed ``net`` (unchanged) as an NNCF fake-quantized graph-form copy, its ranges calibrated on
    ``crops`` (1 x C x h x w arrays or tensors); trainable (weights and quantizer ranges)."""
    need('nncf')
    import nncf

    spec = spec_for(net)
    graph = spec.graph_form(net)
    device = next(graph.parameters()).device
    data = nncf.Dataset([torch.as_tensor(c).to(device) for c in crops])
    return nncf.quantize(graph, data, subset_size=len(crops), **settings(),
                         ignored_scope=nncf.IgnoredScope(types=list(spec.float_ops['torch']), validate=False))


def quantizer_state(qnet: nn.Module, record: dict) -> dict:
    """What a checkpoint keeps of ``qnet``'s quantization (the ``'int8'`` entry): NNCF's placement config as JSON,
    the quantizers' tensors, and ``record`` (a dict saying how they were made) as JSON."""
    import nncf.torch

    own = set(_float_keys(qnet))
    tensors = {k: v.detach().cpu() for k, v in qnet.state_dict().items() if k not in own}
    return {'nncf_config': json.dumps(nncf.torch.get_config(qnet), default=_encode), 'quantizers': tensors,
            'record': json.dumps(record)}


def restored(net: nn.Module, state: dict, path: Optional[str] = None) -> nn.Module:
    """The fake-quantized graph form of the deployed ``net`` (holding the checkpoint's float weights), with the
    quantizers of ``state`` (an ``'int8'`` entry) put back exactly."""
    need('nncf')
    import nncf.torch

    try:
        config = json.loads(state['nncf_config'], object_hook=_decode)
        qnet = nncf.torch.load_from_config(spec_for(net).graph_form(net), config)
        own = qnet.state_dict()
        quantizers = state['quantizers']
        missing = [k for k in own if k not in quantizers and k not in set(_float_keys(qnet))]
        unexpected = [k for k in quantizers if k not in own]
        if missing or unexpected:
            raise CheckpointError(f"its int8 quantizers do not fit this network ({len(missing)} missing, "
                                  f"{len(unexpected)} unexpected)", path)
        qnet.load_state_dict({**own, **quantizers})
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"its '{KEY}' entry is damaged ({type(err).__name__}: {err}); export it without "
                              '--int8, or train the QAT stage again', path) from None
    return qnet


def float_state_dict(qnet: nn.Module, spec: Any) -> Dict[str, torch.Tensor]:
    """``qnet``'s float weights in the released (deployed) layout: its architecture's graph form undone exactly
    (``ArchSpec.from_graph_form``)."""
    float_keys = set(_float_keys(qnet))
    return spec.from_graph_form({k: v.detach().cpu() for k, v in qnet.state_dict().items() if k in float_keys})


def export_qdq(qnet: nn.Module, path: str, opset: int = 17, sample_size: Tuple[int, int] = (64, 64)) -> None:
    """``qnet`` as a QDQ ONNX (QuantizeLinear/DequantizeLinear pairs: what ONNX Runtime, TensorRT and NPUs take,
    and OpenVINO reads as int8) with dynamic batch, height and width, written atomically."""
    from nncf.torch.quantization.layers import BaseQuantizer, QuantizerExportMode

    qnet = qnet.cpu().eval()
    for m in qnet.modules():
        if isinstance(m, BaseQuantizer):
            m.set_export_mode(QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS)
    export_module(qnet, int(getattr(qnet, 'num_in_ch')), path, opset, sample_size)


def _float_keys(qnet):
    """The keys of the network's own parameters and buffers (NNCF's live under ``__nncf_hooks``)."""
    return [k for k in qnet.state_dict() if not k.startswith('__nncf')]


def _encode(obj):
    # NNCF's config holds its enums (the quantization mode); JSON keeps their class and value
    if isinstance(obj, enum.Enum):
        return {'__enum__': f'{type(obj).__module__}:{type(obj).__qualname__}', 'value': obj.value}
    raise TypeError(f'{type(obj).__name__} in the NNCF config')


def _decode(d):
    if '__enum__' not in d:
        return {k: tuple(v) if k == 'scale_shape' and isinstance(v, list) else v for k, v in d.items()}
    module, _, name = d['__enum__'].partition(':')
    if not module.startswith('nncf.'):  # as NNCF's own loader: only its classes are ever looked up
        raise ValueError(f'{module} is not an NNCF module')
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
        raise ValueError(f'{d["__enum__"]} is not an enum')
    return cls(d['value'])
