"""``train.ncc_opt``: the layer-wise NCC loss (docs/method.md). With a frozen teacher (``network_t``), the outputs of
the named layers of ``net_g`` (default: its spec's ``ncc_layers``; PFDN's four blocks) are compared with the
teacher's on the same LR input, read by forward hooks; without one, SR is compared with GT."""
from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn

from basicsr.losses import build_loss

from ..archs import spec_for
from ..errors import OptionsError


def tap(net: nn.Module, names: Sequence[str]) -> Dict[str, Optional[torch.Tensor]]:
    """Record the outputs of the named submodules on each forward; returns the dict they are written to. Its keys
    exist from the start, so that a compiled forward sees the same dict layout on every step."""
    taps: Dict[str, Optional[torch.Tensor]] = OrderedDict((name, None) for name in names)
    for name in names:
        try:
            module = net.get_submodule(name)
        except AttributeError:
            raise OptionsError(f"{type(net).__name__} has no module named '{name}'; name modules of network_g (e.g. "
                               'block1 for PFDN)', 'train.ncc_opt.layers') from None
        module.register_forward_hook(lambda _m, _i, out, name=name: taps.__setitem__(name, out))
    return taps


class LayerwiseNCC:
    """The NCC term of the loss.

    Args:
        ncc_opt (dict): ``NCCLoss`` options plus ``layers``.
        student (nn.Module): the bare ``net_g``.
        teacher (nn.Module | None): the frozen teacher, already loaded, or None (SR against GT).
    """

    def __init__(self, ncc_opt: dict, student: nn.Module, teacher: Optional[nn.Module], device: Any):
        ncc_opt = copy.deepcopy(ncc_opt)
        spec = spec_for(student)
        default = spec.ncc_layers if spec is not None else ()
        self.layers = list(ncc_opt.pop('layers', default))
        if teacher is not None and not self.layers:
            raise OptionsError(f'name the layers of {type(student).__name__} to compare with the teacher (e.g. '
                               "[body.0, body.1]); only a described architecture has default layers",
                               'train.ncc_opt.layers')
        self.loss = build_loss(ncc_opt).to(device)
        self.teacher = teacher
        if teacher is not None:
            teacher.eval()
            for p in teacher.parameters():
                p.requires_grad_(False)
            self.student_taps, self.teacher_taps = tap(student, self.layers), tap(teacher, self.layers)

    def describe(self) -> str:
        return (f'layers {self.layers} against the teacher' if self.teacher is not None else
                'SR vs GT (no teacher)')

    def __call__(self, lq, output, gt):
        """The loss for the forward that just ran on ``lq`` (the student's taps hold its layers)."""
        if self.teacher is None:
            return self.loss(output, gt)
        with torch.no_grad():
            self.teacher(lq)
        return self.loss([self.student_taps[n] for n in self.layers], [self.teacher_taps[n] for n in self.layers])
