"""The PyTorch backends: ``torch``, the plain eager forward (the reference), and ``compile``, ``torch.compile`` with
static shapes (CUDA graphs on CUDA). Both take new weights in place.

torch is imported where a runner is made or one of its facts is asked, not with this module: the chooser reads the
other backends' facts without it (``choose``).
"""
import copy
from typing import Any, Tuple

import numpy as np

from .base import Device, Runner
from .costs import COSTS

PRECISION_DTYPES = {'fp32': 'float32', 'fp16': 'float16', 'bf16': 'bfloat16'}  # torch's names of each precision


def torch_dtype(precision: str) -> Any:
    """The ``torch.dtype`` of a precision's name."""
    import torch

    return getattr(torch, PRECISION_DTYPES[precision])


def as_tensor(x: Any) -> Any:
    """An input as a tensor: numpy arrays (what ``upscaler`` hands over) shared, not copied."""
    import torch

    return torch.from_numpy(x) if isinstance(x, np.ndarray) else x


class TorchRunner(Runner):
    """The plain eager forward (the reference), in the asked precision."""
    name = 'torch'
    costs = COSTS[name]

    @classmethod
    def precisions(cls, device: Any) -> Tuple[str, ...]:
        import torch

        if device.type == 'cuda':
            return ('fp32', 'fp16', 'bf16') if torch.cuda.is_bf16_supported() else ('fp32', 'fp16')
        bf16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        return ('fp32', 'bf16') if bf16 else ('fp32',)

    def __init__(self, net: Any, device: Any, dtype: str, threads: int):
        import torch

        super().__init__(net, device, dtype, threads)
        self.device = torch.device(str(device))
        self.net = copy.deepcopy(net).eval().to(self.device, torch_dtype(dtype))

    def refresh(self, net: Any) -> None:
        """New weights copied in place: nothing is rebuilt, and compiled code (which reads the parameters) stays
        valid."""
        import torch

        own = self.net.state_dict()
        with torch.no_grad():
            for k, v in net.state_dict().items():
                own[k].copy_(v)

    def __call__(self, x: Any) -> Any:
        import torch

        self.check_input(x)
        with torch.inference_mode():
            return self.net(as_tensor(x).to(self.device, torch_dtype(self.dtype))).float()


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
        import torch  # a core requirement: the torch backend is always there, compile where torch has it

        return hasattr(torch, 'compile')

    @classmethod
    def runs_on(cls, device: Device) -> bool:
        if device.type == 'cuda':
            from torch.utils._triton import has_triton  # a private module: asked only where CUDA is
            return has_triton()  # inductor's CUDA kernels are Triton kernels
        return True

    def __init__(self, net: Any, device: Any, dtype: str, threads: int):
        import torch

        super().__init__(net, device, dtype, threads)
        if self.device.type == 'cuda':
            self.net = self.net.to(memory_format=torch.channels_last)
            self.compiled = torch.compile(self.net, dynamic=False, mode='reduce-overhead')
        else:
            self.compiled = torch.compile(self.net, dynamic=False)
        self.shapes: set = set()

    def __call__(self, x: Any) -> Any:
        import torch

        self.check_input(x)
        with torch.no_grad():
            x = as_tensor(x).to(self.device, torch_dtype(self.dtype))
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
