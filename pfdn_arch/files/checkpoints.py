"""Weights and training-state files, read safely: plain tensors only (``torch.load(weights_only=True)``: anything
else is refused, never executed), finite weights only, and a mismatch with the network named key by key."""
import os
import pickle
import sys
from typing import Any, Dict, Optional, Tuple

import torch

from ..archs import spec_of
from ..archs.pfdn.convert import unwrap_state_dict
from ..errors import CheckpointError, require
from .paths import PathError, input_file

STATE_KEYS = {'iter', 'epoch', 'optimizers', 'schedulers'}  # what BasicSR's training states hold
QAT_KEY = 'int8'  # a checkpoint's entry for the quantizers of quantization-aware fine-tuning


def read_checkpoint_file(path: str, device: Any = 'cpu') -> Any:
    """The object a checkpoint file holds, loaded with ``weights_only=True``."""
    try:
        input_file(path)
    except PathError as err:
        raise CheckpointError('checkpoint ' + err.reason, path) from None
    with open(path, 'rb') as f:
        head = f.read(10)
    if head[8:10] == b'{"':  # safetensors: an 8-byte header length, then the JSON header (basicsr export writes it)
        return _read_safetensors(path)
    if not (head.startswith(b'PK\x03\x04') or head[:1] == b'\x80'):  # torch's zip format, or a legacy pickle
        raise CheckpointError('not a PyTorch checkpoint (neither the zip format torch.save writes nor a pickle)'
                              + (': it looks like an ONNX model' if head[:1] == b'\x08' else ''), path)
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError('holds Python objects besides tensors; such a file can run code when it is loaded, so it '
                              'is not loaded here: re-save it as a state dict of tensors', path) from None
    except Exception as err:  # truncated zip, damaged pickle, ...
        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else ''
        raise CheckpointError(f'cannot be read as a PyTorch checkpoint ({type(err).__name__}'
                              + (f': {reason}' if reason else '') + ')', path) from None


def _read_safetensors(path):
    """A .safetensors file's tensors (a format of tensors alone: nothing in it can run)."""
    load_file = require('safetensors.torch', f'reading {os.path.basename(path)}', 'export', 'safetensors').load_file
    try:
        return load_file(path)
    except Exception as err:
        raise CheckpointError(f'cannot be read as a .safetensors file ({str(err).strip().splitlines()[0][:160]})',
                              path) from None


def check_tensors(sd: Dict[str, torch.Tensor], path: str) -> None:
    """Every value a dense, finite floating-point tensor with real data: what weights are."""
    for k, v in sd.items():
        if v.layout != torch.strided:
            raise CheckpointError(f'{k} is a {v.layout} tensor; weights are dense tensors', path)
        if v.is_meta:
            raise CheckpointError(f'{k} is a meta tensor (a shape without data): the file holds no weights', path)
        if not v.is_floating_point():
            raise CheckpointError(f'{k} holds {str(v.dtype).replace("torch.", "")} values, not floating-point weights '
                                  '(a quantized or damaged checkpoint)', path)
    bad = [k for k, v in sd.items() if not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f'{len(bad)} of its tensors hold NaN or Inf values (e.g. {bad[0]}); these weights '
                              'cannot make an image: use an earlier checkpoint', path)


def load_checkpoint(path: str, param_key: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """A checkpoint file as a bare state dict of finite tensors (BasicSR's ``{'params', 'params_ema'}`` unwrapped,
    ``param_key=None`` preferring ``params_ema``)."""
    obj = read_checkpoint_file(path)
    try:
        sd = unwrap_state_dict(obj, param_key)
    except CheckpointError as err:
        err.path = str(path)
        raise
    check_tensors(sd, path)
    return sd


def qat_state(path: str) -> Optional[dict]:
    """The int8 quantizers a checkpoint of quantization-aware fine-tuning holds (``deploy/export/int8/qat.py``), or
    None."""
    obj = read_checkpoint_file(path)
    state = obj.get(QAT_KEY) if isinstance(obj, dict) else None
    if state is not None and not (isinstance(state, dict) and isinstance(state.get('nncf_config'), str)
                                  and isinstance(state.get('quantizers'), dict)):
        raise CheckpointError(f"its '{QAT_KEY}' entry is not the quantizers of quantization-aware fine-tuning", path)
    return state


def check_fit(net: torch.nn.Module, state_dict: Dict[str, torch.Tensor], path: str, strict: bool = True) -> None:
    """CheckpointError naming what of ``state_dict`` does not fit ``net`` (missing keys, unexpected keys, shapes),
    not a RuntimeError listing hundreds of keys. Reads only names and shapes: ``net`` may be on the meta device."""
    own = net.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f'{k} is {tuple(state_dict[k].shape)}, the network has {tuple(own[k].shape)}' for k in own
              if k in state_dict and state_dict[k].shape != own[k].shape]
    if shapes or (strict and (missing or unexpected)):
        parts = [f"{len(missing)} missing (e.g. {', '.join(missing[:2])})" if missing else '',
                 f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:2])})" if unexpected else '',
                 f'{len(shapes)} of another shape ({shapes[0]})' if shapes else '']
        raise CheckpointError(f"does not fit this {type(net).__name__}: keys {'; '.join(p for p in parts if p)}",
                              path)


def load_into(net: torch.nn.Module, state_dict: Dict[str, torch.Tensor], path: str, strict: bool = True) -> Any:
    """``net.load_state_dict`` after ``check_fit``. Returns (missing, unexpected) when not strict."""
    check_fit(net, state_dict, path, strict)
    return net.load_state_dict(state_dict, strict=strict)


def build_from_checkpoint(path: str, param_key: Optional[str] = None,
                          **overrides: Any) -> Tuple[Any, Dict[str, torch.Tensor]]:
    """The network a checkpoint describes (its architecture's spec: PFDN in either form), loaded strictly.
    Returns (net, state_dict); the net is of the architecture's own class (its spec's ``network``)."""
    sd = load_checkpoint(path, param_key)
    try:
        spec = spec_of(sd)
        opts = spec.hyperparameters(sd)
    except CheckpointError as err:
        err.path = str(path)
        raise
    opts.update(overrides)
    net = spec.network(**opts)
    load_into(net, sd, path)
    return net, sd


def read_training_state(path: str, device: Any = 'cpu') -> dict:
    """A BasicSR training state (``<iter>.state``), loaded with ``weights_only=True``."""
    state = read_checkpoint_file(path, device)
    if not isinstance(state, dict) or not STATE_KEYS <= set(state):
        raise CheckpointError('not a BasicSR training state', path)
    return state


def set_aside(path: str, reason: str) -> None:
    """Rename a damaged file to ``<path>.damaged`` (never deleted: it is the user's) and say so in one line."""
    target, n = path + '.damaged', 1
    while os.path.exists(target):
        n += 1
        target = f'{path}.damaged{n}'
    os.replace(path, target)
    print(f'note: {path} is damaged ({reason}); set aside as {os.path.basename(target)}', file=sys.stderr)
