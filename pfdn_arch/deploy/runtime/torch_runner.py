"""The PyTorch backends: ``torch``, the plain eager forward (the reference), and ``compile``, ``torch.compile`` with
static shapes (CUDA graphs on CUDA). Both take new weights in place."""
import copy
from typing import Tuple

import torch

from .base import DTYPES, Runner


class TorchRunner(Runner):
    """The plain eager forward (the reference), in the asked precision."""
    name = 'torch'
    costs = {'cpu': {'fp32': (0.0, 0.0, 1.0), 'bf16': (0.0, 0.0, 0.6)},
             'cuda': {'fp32': (0.0, 0.0, 1.0), 'fp16': (0.0, 0.0, 0.55), 'bf16': (0.0, 0.0, 0.6)}}

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
        return self.net(x.to(self.device, DTYPES[self.dtype])).float()


class CompileRunner(TorchRunner):
    """``torch.compile`` with static shapes: an input size compiles once (seconds on a GPU, tens of seconds on a
    CPU), so it pays where sizes repeat (tiles, a folder of one size, batches); after ``MAX_SHAPES`` sizes, new
    ones run eager rather than compile again. On CUDA: CUDA graphs ('reduce-overhead') in channels_last. The
    weights stay parameters (no freezing), so ``refresh`` needs no recompilation. The compile options are this
    model's own, nothing process-wide is changed."""
    name = 'compile'
    # CPU bf16 is left out of auto's pairs: it moved Set5 by -0.0100 dB on the AMD EPYC (AVX512-BF16), at the line
    costs = {'cpu': {'fp32': (5.0, 30.0, 0.62)},
             'cuda': {'fp32': (1.0, 10.0, 0.4), 'fp16': (1.0, 10.0, 0.25), 'bf16': (1.0, 10.0, 0.3)}}
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
        x = x.to(self.device, DTYPES[self.dtype])
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
