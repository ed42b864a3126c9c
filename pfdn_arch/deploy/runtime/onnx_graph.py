"""The ONNX graph every runtime here runs: the architecture's export form (its spec's ``graph_form``), input ``lr``,
output ``sr``, dynamic batch, height and width, written atomically (TorchScript-based exporter: the ESA's resize
follows the runtime input size)."""
import copy
import os
import warnings
from typing import Any, Tuple

import torch
from torch import nn

from ...archs import spec_for
from ...files.atomic import atomic_path


def export_module(module: nn.Module, in_ch: int, path: str, opset: int = 17,
                  sample_size: Tuple[int, int] = (64, 64)) -> None:
    """``module`` (a graph form, plain or fake-quantized) as ONNX at ``path``, written atomically."""
    x = torch.rand(1, in_ch, *sample_size)
    with warnings.catch_warnings(), torch.no_grad(), atomic_path(path) as tmp:
        warnings.simplefilter('ignore')
        torch.onnx.export(module, (x,), tmp, input_names=['lr'], output_names=['sr'], opset_version=opset,
                          dynamic_axes={'lr': {0: 'batch', 2: 'height', 3: 'width'},
                                        'sr': {0: 'batch', 2: 'sr_height', 3: 'sr_width'}}, dynamo=False)


def export_onnx(net: Any, path: str, opset: int = 17, sample_size: Tuple[int, int] = (64, 64)) -> None:
    """ONNX export of a deployed network in its spec's graph form."""
    export_module(spec_for(net).graph_form(net), net.num_in_ch, path, opset, sample_size)


def export_fp32(net: nn.Module, path: str) -> None:
    """The ONNX export of ``net`` (deployed) in fp32 on the CPU at ``path``, ``net`` itself left as it is."""
    export_onnx(copy.deepcopy(net).float().cpu(), path)


def onnx_model_file(net: nn.Module, folder: str) -> str:
    """The ONNX export of ``net`` (deployed, fp32) written into ``folder``; its path."""
    path = os.path.join(folder, 'pfdn.onnx')
    export_fp32(net, path)
    return path
