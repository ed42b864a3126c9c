"""The PyTorch backends: ``torch``, the plain eager forward (the reference), and ``compile``, ``torch.compile`` with
static shapes (CUDA graphs on CUDA). Both take new weights in place."""
import copy
from typing import Tuple

import numpy as np
import torch

from .base import Runner
from .costs import COSTS

DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}


def as_tensor(x) -> torch.Tensor:
    """An input as a tensor: numpy arrays (what ``upscaler`` hands over) shared, not copied."""
    return torch.from_numpy(x) if isinstance(x, np.ndarray) else x


class TorchRunner(Runner):
    """The plain eager forward (the reference), in the asked precision."""
    name = 'torch'
    costs = COSTS[name]

    @classmethod
    def precisions(cls, device: torch.device) -> Tuple[str, ...]:
        if device.type == 'cuda':
            return ('fp32', 'fp16', 'bf16') if torch.cuda.is_bf16_supported() else ('fp32', 'fp16')
        bf16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        return ('fp32', 'bf16') if bf16 else ('fp32',)

    def __init__(self, net, device, dtype, threads):
        super().__init__(net, device, dtype, threads)
        self.net = copy.deepcopy(net).eval().to(device, DTYPES[dtype])

    @torch.no_grad()
    def refresh(self, net):
        """New weights copied in place: nothing is rebuilt, and compiled code (which reads the parameters) stays
        valid."""
        own = self.net.state_dict()
        for k, v in net.state_dict().items():
            own[k].copy_(v)

    @torch.inference_mode()
    def __call__(self, x):
        self.check_input(x)
        return self.net(as_tensor(x).to(self.device, DTYPES[self.dtype])).float()


class CompileRunner(TorchRunner):
    """``torch.compile`` with static shapes: an input size compiles once (seconds on a GPU, tens of seconds on a
    CPU), so it pays where sizes repeat (tiles, a folder of one size, batches); after ``MAX_SHAPES`` sizes, new
    ones run eager rather than compile again. On CUDA: CUDA graphs ('reduce-overhead') in channels_last. The
    weights stay parameters (no freezing), so ``refresh`` needs no recompilation. The compile options are this
    model's own, nothing process-wide is changed."""
    name = 'compile'
    costs = COSTS[name]  # its CPU bf16 is not among auto's pairs (costs.COSTS says why)
    MAX_SHAPES = 4

    @classmethod
    def installed(cls) -> bool:
        return hasattr(torch, 'compile')

    @classmethod
    def runs_on(cls, device: torch.device) -> bool:
        if device.type == 'cuda':
            from torch.utils._triton import has_triton  # a private module: asked only where CUDA is
            return has_triton()  # inductor's CUDA kernels are Triton kernels
        return True

    def __init__(self, net, device, dtype, threads):
        super().__init__(net, device, dtype, threads)
        if device.type == 'cuda':
            self.net = self.net.to(memory_format=torch.channels_last)
            self.compiled = torch.compile(self.net, dynamic=False, mode='reduce-overhead')
        else:
            self.compiled = torch.compile(self.net, dynamic=False)
        self.shapes = set()

    @torch.no_grad()
    def __call__(self, x):
        self.check_input(x)
        x = as_tensor(x).to(self.device, DTYPES[self.dtype])
        if tuple(x.shape) not in self.shapes:
            if len(self.shapes) >= self.MAX_SHAPES:
                return self.net(x).float()
            self.shapes.add(tuple(x.shape))
            self.builds += 1
        if self.device.type == 'cuda':
            torch.compiler.cudagraph_mark_step_begin()
            x = x.contiguous(memory_format=torch.channels_last)
            return self.compiled(x).float().clone()  # CUDA graph outputs are reused by the next replay
        return self.compiled(x).float()
