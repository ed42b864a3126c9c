"""Safe checkpoint I/O: plain tensor state dicts only, never pickled code."""
import os
import pickle

import torch

from .archs.reparam import infer_pfdn_options, unwrap_state_dict
from .errors import UserError


def load_checkpoint(path, param_key=None):
    """Load a PFDN checkpoint file as a bare state dict.

    Uses ``torch.load(weights_only=True)``: a file holding anything but tensors and plain containers is refused,
    never executed. BasicSR's ``{'params', 'params_ema'}`` wrapper is unwrapped (see ``unwrap_state_dict``).
    """
    if not os.path.isfile(path):
        raise UserError(f'checkpoint not found: {path}')
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f'{path} is not a plain tensor state dict and was not loaded (weights_only=True refused it: '
                        f'{first}); re-save it as a state dict of tensors') from None
    except Exception as err:  # truncated zip, not a torch file at all, ...
        raise UserError(f'cannot read {path} as a PyTorch checkpoint ({type(err).__name__}: {err})') from None
    try:
        return unwrap_state_dict(obj, param_key)
    except ValueError as err:
        raise UserError(f'{path}: {err}') from None


def build_pfdn_from_checkpoint(path, param_key=None, **overrides):
    """Build the PFDN a checkpoint describes (either form) and load it strictly. Returns (net, state_dict)."""
    from .archs import PFDN

    sd = load_checkpoint(path, param_key)
    try:
        opts = infer_pfdn_options(sd)
    except ValueError as err:
        raise UserError(f'{path}: {err}') from None
    opts.update(overrides)
    net = PFDN(**opts)
    net.load_state_dict(sd, strict=True)
    return net, sd
