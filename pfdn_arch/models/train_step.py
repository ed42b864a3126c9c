"""How one optimizer step of ``PFDNModel`` runs: precision (``train.amp``), loss scaling, gradient clipping, and the
one rule for a loss that is not finite: that step never changes the weights, and the run stops with
``TrainingDiverged`` before anything is saved from it.

Where the rule is enforced depends on what can skip a step without asking the host: a fused Adam/AdamW (the default
on CUDA) and fp16's gradient scaler skip it on the device, so the loss is only looked at when it is logged, saved or
validated (one host sync then, none per step); any other optimizer is checked before its step (free on a CPU).
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Dict, List, Optional

import torch

from ..errors import OptionsError, TrainingDiverged

# ``train.amp``: every value it takes and the autocast dtype each means (None: no autocast, fp32). The option checks
# read the allowed values from here (checks/overrides.py), so the two cannot disagree.
AMP_DTYPES: Dict[str, Optional[torch.dtype]] = {'none': None, 'fp32': None, 'bf16': torch.bfloat16,
                                                'fp16': torch.float16}
AMP_OFF = 'none'  # what turns it off (a yml's ``amp: ~`` means the same)


def autocast_dtype(amp: Any) -> Optional[torch.dtype]:
    """The autocast dtype a ``train.amp`` value means (None: fp32); OptionsError for a value it does not take."""
    amp = AMP_OFF if amp is None else amp
    if not isinstance(amp, str) or amp not in AMP_DTYPES:
        raise OptionsError(f"must be one of {', '.join(AMP_DTYPES)}, got {amp!r}", 'train.amp')
    return AMP_DTYPES[amp]


def amp_dtype(opt: dict) -> Optional[torch.dtype]:
    """The autocast dtype ``train.amp`` asks for in a training run (None: fp32, and always for a test run)."""
    dtype = autocast_dtype((opt.get('train') or {}).get('amp'))
    return dtype if opt['is_train'] else None


class TrainStep:
    """One step: forward under autocast (``autocast()``), then ``backward_and_step(loss)``.

    Args:
        dtype: autocast dtype, or None for fp32.
        device (torch.device): where the network runs.
        optimizer: the optimizer of ``params``.
        params (callable): the parameters to clip, freshly (DDP wraps them).
        grad_clip_norm (float | None): clip the gradient norm to this value.
        saved_in (str): where the last good checkpoint is, for the error message.
    """

    def __init__(self, dtype: Optional[torch.dtype], device: torch.device, optimizer: torch.optim.Optimizer,
                 params: Callable[[], List[torch.Tensor]], grad_clip_norm: Optional[float] = None, saved_in: str = ''):
        self.dtype, self.device, self.optimizer, self.params = dtype, device, optimizer, params
        self.grad_clip_norm, self.saved_in = grad_clip_norm, saved_in
        # fp16 needs loss scaling; the scaler also skips steps whose gradients overflowed
        self.scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
        self.on_device = self.scaler is not None or bool(optimizer.defaults.get('fused'))
        self.bad_steps = torch.zeros((), device=device)
        self.checked_iter = 0

    def autocast(self) -> ContextManager:
        return nullcontext() if self.dtype is None else torch.autocast(self.device.type, dtype=self.dtype)

    def backward_and_step(self, loss: torch.Tensor, losses: dict, current_iter: int) -> None:
        """Backward, clip and step, unless the loss is not finite (see the module's docstring)."""
        if not self.on_device and not torch.isfinite(loss):
            values = ', '.join(f'{k}={v.item():.4g}' for k, v in losses.items())
            raise TrainingDiverged(f'loss is not finite at iteration {current_iter} ({values}); the step was not '
                                   f'applied and the last saved checkpoint in {self.saved_in} is kept. Lower the '
                                   'learning rate or set train.grad_clip_norm, then resume from that checkpoint')
        (self.scaler.scale(loss) if self.scaler else loss).backward()
        if self.grad_clip_norm:
            if self.scaler:
                self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params(), self.grad_clip_norm)
        if self.on_device:
            self.bad_steps += ~torch.isfinite(loss.detach())
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped on the device when the gradients are not finite
            self.scaler.update()
        elif self.on_device:
            # the fused kernel skips the update where found_inf is set; computed from the (all-reduced) gradients,
            # so every DDP rank skips the same steps
            found_inf = torch.zeros((), device=self.device)
            grads = [p.grad for p in self.params() if p.grad is not None]
            torch._amp_foreach_non_finite_check_and_unscale_(grads, found_inf, torch.ones((), device=self.device))
            self.optimizer.found_inf = found_inf  # type: ignore[attr-defined]  # read by the fused Adam kernel
            self.optimizer.step()
            del self.optimizer.found_inf  # type: ignore[attr-defined]
        else:
            self.optimizer.step()

    def check(self, current_iter: int) -> None:
        """Raise if a step since the last check had a non-finite loss (those steps were skipped, so the weights and
        every saved checkpoint are untouched). One host sync; nothing to do when steps are checked before."""
        if not self.on_device:
            return
        bad = int(self.bad_steps.item())
        if bad:
            raise TrainingDiverged(
                f'loss was not finite in {bad} step(s) between iterations {self.checked_iter} and {current_iter}; '
                f'those steps were skipped and the last saved checkpoint in {self.saved_in} is kept. Lower the '
                'learning rate or set train.grad_clip_norm, then resume from that checkpoint')
        self.checked_iter = current_iter

    def state_dict(self) -> dict:
        return {'scaler': self.scaler.state_dict()} if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and 'scaler' in state:
            self.scaler.load_state_dict(state['scaler'])
