"""Safe checkpoint I/O: plain tensor state dicts only, never pickled code; finite weights only; a damaged
training state is set aside and an earlier one used."""
import os
import pickle
import re
import sys

import torch

from .archs.reparam import infer_pfdn_options, unwrap_state_dict
from .errors import UserError

_STATE_NAME = re.compile(r'(\d+)\.state')


def read_checkpoint_file(path):
    """The object a checkpoint file holds, read with ``torch.load(weights_only=True)``: anything but tensors and
    plain containers is refused, never executed."""
    if not os.path.isfile(path):
        raise UserError(f'checkpoint not found: {path}')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f'{path} is not a plain tensor state dict and was not loaded (weights_only=True refused it: '
                        f'{first}); re-save it as a state dict of tensors') from None
    except Exception as err:  # truncated zip, not a torch file at all, ...
        raise UserError(f'cannot read {path} as a PyTorch checkpoint ({type(err).__name__}: {err})') from None


def load_checkpoint(path, param_key=None):
    """Load a PFDN checkpoint file as a bare state dict.

    Uses ``torch.load(weights_only=True)``: a file holding anything but tensors and plain containers is refused,
    never executed. BasicSR's ``{'params', 'params_ema'}`` wrapper is unwrapped (see ``unwrap_state_dict``).
    """
    obj = read_checkpoint_file(path)
    try:
        sd = unwrap_state_dict(obj, param_key)
    except ValueError as err:
        raise UserError(f'{path}: {err}') from None
    bad = [k for k, v in sd.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise UserError(f'{path}: {len(bad)} of its tensors hold NaN or Inf values (e.g. {bad[0]}); these weights '
                        'cannot make an image: use an earlier checkpoint')
    return sd


def load_into(net, state_dict, path, strict=True):
    """``net.load_state_dict`` whose mismatch is a UserError naming what does not fit (missing keys, unexpected
    keys, shapes), not a RuntimeError listing hundreds of keys. Returns (missing, unexpected) when not strict."""
    own = net.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f'{k} is {tuple(state_dict[k].shape)}, the network has {tuple(own[k].shape)}' for k in own
              if k in state_dict and state_dict[k].shape != own[k].shape]
    if shapes or (strict and (missing or unexpected)):
        parts = [f"{len(missing)} missing (e.g. {', '.join(missing[:2])})" if missing else '',
                 f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:2])})" if unexpected else '',
                 f'{len(shapes)} of another shape ({shapes[0]})' if shapes else '']
        raise UserError(f"{path} does not fit this {type(net).__name__}: keys {'; '.join(p for p in parts if p)}; "
                        'check network_g against the checkpoint (basicsr profile --weights shows what it holds)')
    return net.load_state_dict(state_dict, strict=strict)


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
    load_into(net, sd, path)
    return net, sd


def set_aside(path, reason):
    """Rename a damaged file to ``<path>.damaged`` (never deleted: it is the user's) and say so in one line."""
    target, n = path + '.damaged', 1
    while os.path.exists(target):
        n += 1
        target = f'{path}.damaged{n}'
    os.replace(path, target)
    print(f'note: {path} is damaged ({reason}); set aside as {os.path.basename(target)}', file=sys.stderr)


def read_training_state(path, device='cpu'):
    """A training state (``<iter>.state``), loaded with ``weights_only=True``; UserError when it cannot be."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(f'{path}: not a plain training state (weights_only=True refused it)') from None
    except Exception as err:
        raise UserError(f'{path}: cannot be read ({type(err).__name__}: {str(err).splitlines()[0][:120]})') from None
    if not isinstance(state, dict) or not {'iter', 'epoch', 'optimizers', 'schedulers'} <= set(state):
        raise UserError(f'{path}: not a BasicSR training state')
    return state


def saved_state_iters(experiment):
    """The iterations of an experiment's training states (``training_states/<iter>.state``), newest first."""
    states = os.path.join(experiment, 'training_states')
    names = os.listdir(states) if os.path.isdir(states) else []
    return sorted((int(m[1]) for m in map(_STATE_NAME.fullmatch, names) if m), reverse=True)


def newest_resumable_state(experiment, device='cpu'):
    """(path, state) of the newest training state of ``experiment`` whose state and network checkpoint both load;
    newer damaged ones (a kill mid-save by an older version, a full disk, ...) are set aside with a line each.
    (None, None) when there is none."""
    for it in saved_state_iters(experiment):
        state_path = os.path.join(experiment, 'training_states', f'{it}.state')
        net_path = os.path.join(experiment, 'models', f'net_g_{it}.pth')
        try:
            state = read_training_state(state_path, device)
        except UserError as err:
            set_aside(state_path, str(err).split(': ', 1)[1])
            continue
        try:
            load_checkpoint(net_path)
        except UserError as err:
            if os.path.exists(net_path):
                set_aside(net_path, str(err).split(': ', 1)[-1])
            set_aside(state_path, f'its network checkpoint net_g_{it}.pth does not load')
            continue
        return state_path, state
    return None, None
