"""Conversion of PFDN state dicts between the training form (RRRB branches) and the deployed form.

Training form keys:  ``block1.conv1.{expand_conv,fea_conv,reduce_conv}.{weight,bias}``
Deployed form keys:  ``block1.conv1.rep_conv.{weight,bias}`` (the released layout)

The hyperparameters of a PFDN are read off either form's keys and shapes by its spec (``spec.py``), so a
checkpoint is enough to rebuild its network.
"""
import copy
from collections import OrderedDict
from typing import Mapping, Optional, Tuple

import torch
from torch import nn

from ...errors import CheckpointError
from .rrrb import fuse_rrrb

_BRANCHES = ('expand_conv', 'fea_conv', 'reduce_conv')


def unwrap_state_dict(checkpoint: Mapping, param_key: Optional[str] = None) -> 'OrderedDict[str, torch.Tensor]':
    """Return the bare state dict of a checkpoint: bare, or BasicSR's ``{'params', 'params_ema'}``.

    ``param_key=None`` prefers ``params_ema`` (what BasicSR validates with) and falls back to ``params``.
    A ``module.`` prefix left by (Distributed)DataParallel is removed.
    """
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'expected a state dict, got {type(checkpoint).__name__}')
    if any(k in checkpoint for k in ('params', 'params_ema')):
        if param_key is None:
            param_key = 'params_ema' if 'params_ema' in checkpoint else 'params'
        if param_key not in checkpoint:
            raise CheckpointError(f"checkpoint has no '{param_key}' entry (it has: {', '.join(sorted(checkpoint))})")
        checkpoint = checkpoint[param_key]
    elif param_key not in (None, 'params', 'params_ema'):
        raise CheckpointError(f"checkpoint is a bare state dict; there is no '{param_key}' entry")
    out = OrderedDict()
    for k, v in checkpoint.items():
        if not isinstance(k, str):
            raise CheckpointError(f'it has a key that is not a name ({k!r}): not a state dict of a network')
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"entry '{k}' is a {type(v).__name__}, not a tensor: not a PFDN state dict")
        out[k[7:] if k.startswith('module.') else k] = v
    return out


def is_training_form(state_dict: Mapping) -> bool:
    """True when the state dict holds RRRB branches (training form)."""
    return any(k.endswith('.expand_conv.weight') for k in state_dict)


@torch.no_grad()
def reparameterize_state_dict(checkpoint: dict, param_key: Optional[str] = None) -> 'OrderedDict[str, torch.Tensor]':
    """Fuse a training-form PFDN state dict into the deployed form, exactly, in the released key layout.

    Args:
        checkpoint (dict): Bare state dict or BasicSR's ``{'params', 'params_ema'}`` wrapper.
        param_key (str | None): Entry of a wrapped checkpoint; None prefers ``params_ema``.

    Returns:
        OrderedDict: deployed-form state dict (same dtype as the input; fusion computed in float64).
    """
    sd = unwrap_state_dict(checkpoint, param_key)
    if not is_training_form(sd):
        raise CheckpointError('state dict is not in the training (RRRB) form: it has no *.expand_conv.weight keys')
    # every RRRB whole: a branch tensor without the rest would otherwise be dropped without a word
    prefixes = {k.rsplit('.', 2)[0] for k in sd if k.count('.') >= 2 and k.rsplit('.', 2)[1] in _BRANCHES}
    for prefix in sorted(prefixes):
        missing = [f'{prefix}.{b}.{p}' for b in _BRANCHES for p in ('weight', 'bias') if f'{prefix}.{b}.{p}' not in sd]
        if missing:
            raise CheckpointError(f"incomplete RRRB at '{prefix}': missing {', '.join(missing)}")
    out = OrderedDict()
    for key, value in sd.items():
        prefix, _, leaf = key.rpartition('.')
        prefix, _, branch = prefix.rpartition('.')
        if branch not in _BRANCHES:
            out[key] = value
            continue
        if branch != 'expand_conv' or leaf != 'weight':
            continue  # consumed together with expand_conv.weight below
        names = [f'{prefix}.{b}.{p}' for b in _BRANCHES for p in ('weight', 'bias')]  # all there: checked above
        w0, b0, w1, b1, w2, b2 = (sd[n].double() for n in names)
        weight, bias = fuse_rrrb(w0, b0, w1, b1, w2, b2)
        out[f'{prefix}.rep_conv.weight'] = weight.to(value.dtype)
        out[f'{prefix}.rep_conv.bias'] = bias.to(value.dtype)
    return out


def checkpoint_filter(state_dict: Mapping, net: nn.Module) -> Tuple[dict, bool]:
    """A state dict made to fit ``net``'s form (as timm's ``checkpoint_filter_fn``): a training-form one is fused
    exactly when ``net`` is deployed; a deployed one cannot feed a training-form net (CheckpointError saying what
    to do). Returns (state_dict, fused)."""
    sd = unwrap_state_dict(state_dict)
    if getattr(net, 'deploy', False) and is_training_form(sd):
        return reparameterize_state_dict(sd), True
    if not getattr(net, 'deploy', True) and not is_training_form(sd) and any(
            k.endswith('.rep_conv.weight') for k in sd):
        raise CheckpointError('this checkpoint is in the deployed (fused) form and cannot feed a training-form PFDN; '
                         'build the net with deploy: true (network_g: {type: PFDN, deploy: true})')
    return sd, False


def detached_copy(net: nn.Module) -> nn.Module:
    """A copy of a network without its training apparatus: no ``torch.compile`` code (``nn.Module.compile``), no
    forward hooks (e.g. the NCC loss taps), no gradients; so it runs at any input size and leaves ``net`` as it is."""
    compiled = net.__dict__.pop('_compiled_call_impl', None)
    try:
        copied = copy.deepcopy(net)
    finally:
        if compiled is not None:
            net._compiled_call_impl = compiled
    for module in copied.modules():
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
    for p in copied.parameters():
        p.grad = None
    return copied


def reparameterized(net: nn.Module, inplace: bool = False) -> nn.Module:
    """The deployed form of a PFDN (any network with ``reparameterize``): ``net`` itself fused in place
    (``inplace=True``), or a fused :func:`detached_copy` that leaves ``net`` untouched."""
    fused: nn.Module = getattr(net if inplace else detached_copy(net), 'reparameterize')()
    return fused
