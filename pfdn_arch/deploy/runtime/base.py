"""What every backend runner shares: the precisions by name, the device parsing, the default number of threads, and
``Runner``: the resolved choice, the network's scale and input checks, and the facts a backend declares about itself
(its name, whether it is installed here, the devices and precisions it runs, and its costs for ``auto``).

Importing this (and every runner's module, the chooser and the export cache) does not import torch: ``basicsr infer``
of a checkpoint the export cache knows runs OpenVINO without it (``build``). The runtimes' runners given a numpy
array return one, given a torch tensor a tensor; the torch runners take either and return tensors on their device.
"""
import functools
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple, Type, TypeVar

import numpy as np

from ...archs.pfdn.limits import check_lr_input
from ...errors import OptionsError

PRECISION_NAMES = ('fp32', 'fp16', 'bf16')
T = TypeVar('T')
INSTALL = "pip install 'pfdn[fast]'"


@dataclass(frozen=True)
class Device:
    """Where a runner runs, as the chooser and the runtimes read it, without torch: its ``type`` ('cpu', 'cuda') and
    ``index`` (None: the current one). The torch runners make a ``torch.device`` of it (``str``)."""
    type: str
    index: Optional[int] = None

    def __str__(self) -> str:
        return self.type if self.index is None else f'{self.type}:{self.index}'


CPU = Device('cpu')


def parse_device(device: Any) -> Device:
    """The ``Device`` of 'cpu', 'cuda', 'cuda:N' or a ``torch.device``; OptionsError naming the choices otherwise."""
    if hasattr(device, 'type'):  # a torch.device, or a Device
        return Device(str(device.type), getattr(device, 'index', None))
    text = str(device).strip()
    kind, _, index = text.partition(':')
    if kind not in ('cpu', 'cuda') or (index and not index.isdigit()) or (kind == 'cpu' and index):
        raise OptionsError(f"unknown device '{device}'; use cpu, cuda or cuda:N", 'device')
    return Device(kind, int(index) if index else None)


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (a fact only torch knows: asked where CUDA is asked for)."""
    import torch

    return torch.cuda.is_available()


def default_threads() -> int:
    """The threads a runtime runs on unless told: torch's own number where torch is loaded, else what torch would
    choose, so that a run with torch and one without (the export cache's route) split the cores alike: ``OMP_NUM_THREADS``,
    else the physical cores this process may use (Linux's CPU topology), else every logical CPU."""
    if 'torch' in sys.modules:
        return sys.modules['torch'].get_num_threads()
    chosen = os.environ.get('OMP_NUM_THREADS', '')
    if re.fullmatch(r'\s*[1-9][0-9]*\s*', chosen):
        return int(chosen)
    return _physical_cores() or os.cpu_count() or 1


def _physical_cores() -> Optional[int]:
    try:
        cpus = os.sched_getaffinity(0)
        cores = set()
        for cpu in cpus:
            topology = f'/sys/devices/system/cpu/cpu{cpu}/topology/'
            with open(topology + 'core_id') as f, open(topology + 'physical_package_id') as g:
                cores.add((f.read().strip(), g.read().strip()))
        return len(cores) or None
    except (AttributeError, OSError):
        return None


class Runner:
    """A callable ``x -> SR`` for one backend. Class attributes and class methods are the backend's facts, read by
    ``choose.py``; an instance holds the resolved device, precision and threads.

    Backend facts: ``name``; ``costs`` {device type: {precision: (seconds to build: export and compile, seconds to
    compile each new input size, seconds per million LR pixels relative to torch fp32)}} as bench/bench_infer.py
    measures them (``costs.COSTS``; a precision without costs is not one ``--dtype auto`` picks);
    ``runs_export``: whether it runs the network's ONNX export (so also a graph the export cache recalls, without
    the network), not the network itself."""
    name: str = ''
    costs: Dict[str, Dict[str, Tuple[float, float, float]]] = {}
    runs_export: bool = False

    @classmethod
    def installed(cls) -> bool:
        """Whether the backend's runtime can be imported here."""
        return True

    @classmethod
    def runs_on(cls, device: Any) -> bool:
        """Whether it runs on ``device`` (a torch.device or ``Device``) here (installed assumed)."""
        return True

    @classmethod
    def precisions(cls, device: Any) -> Tuple[str, ...]:
        """The precisions it runs natively on ``device``."""
        return ('fp32',)

    def __init__(self, net: Any, device: Any, dtype: str, threads: int):
        self.device, self.dtype, self.threads = device, dtype, threads
        self.upscale, self.num_in_ch = getattr(net, 'upscale', None), getattr(net, 'num_in_ch', None)
        self.check_input = getattr(net, 'check_input', lambda x: None)
        self.builds = 0  # exports and compilations so far: what refreshing saves
        self.streams = 1  # images it runs at once, each from a thread of the caller's

    # how it was built (``build.build_runner``: 'network', 'model file', 'export cache' or 'checkpoint')
    route: str = 'network'

    def __call__(self, x: Any) -> Any:
        """SR of ``x`` (N x C x H x W in [0, 1]: a tensor, or a float32 array for the runtimes)."""
        raise NotImplementedError

    def refresh(self, net: Any) -> None:
        """Take ``net``'s weights (the same network, trained further)."""
        raise NotImplementedError

    def with_output(self, x: Any, use: Callable[[Any], T]) -> T:
        """``use(result)`` of the forward of ``x``, its value returned, called while the runtime's output memory is
        still this call's: a runtime that reuses it (OpenVINO's requests) gives it without a copy."""
        return use(self(x))

    def __repr__(self):
        return f'{self.name} ({self.dtype}, {self.device})'


class ModelFile(Runner):
    """A runner of a model file made elsewhere (``path``): its inputs checked as PFDN's (the files hold its graph),
    no new weights, named by its file and where it runs (``where``)."""
    path: str = ''
    where: str = 'cpu'

    def check_input(self, x: Any) -> None:
        check_lr_input(x.shape, self.num_in_ch or 3)

    def refresh(self, net: Any) -> None:
        raise ValueError('a model file cannot take new weights')

    def __repr__(self):
        return f'{self.name} ({os.path.basename(self.path)}, {self.where})'


# how the runtimes say an allocation failed: torch (CUDA's "out of memory", its CPU allocator's "not enough
# memory"), OpenVINO and ONNX Runtime ("Cannot allocate memory", "Failed to allocate"), NCNN
OUT_OF_MEMORY = ('out of memory', 'not enough memory', 'cannot allocate memory', 'failed to allocate',
                 'bad_alloc')


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` (from a runner) means its device ran out of memory: MemoryError, torch's
    ``OutOfMemoryError``, or a runtime's error that says so."""
    if isinstance(err, MemoryError) or type(err).__name__ == 'OutOfMemoryError':
        return True
    return isinstance(err, RuntimeError) and any(words in str(err).lower() for words in OUT_OF_MEMORY)


def runs_graph(net: Any) -> bool:
    """Whether the runtimes can run ``net``: an architecture with a spec (its export graph); others (BasicSR's
    MSRResNet, ...) run on torch only."""
    from ...archs import spec_for

    return spec_for(net) is not None


@functools.lru_cache(maxsize=None)
def cached_precisions(runner: Type[Runner], device: Any) -> Tuple[str, ...]:
    """``runner.precisions(device)``, asked once per process (OpenVINO's query is slow)."""
    return runner.precisions(device)


def numpy_input(x: Any) -> np.ndarray:
    """A runtime's input: contiguous float32 on the CPU, from a numpy array or a torch tensor."""
    if isinstance(x, np.ndarray):
        return np.ascontiguousarray(x, np.float32)
    import torch

    return np.ascontiguousarray(x.detach().to('cpu', torch.float32).numpy())


def like_input(out: np.ndarray, x: Any) -> Any:
    """A runtime's result handed back as its input came: a numpy array, or a torch tensor."""
    if isinstance(x, np.ndarray):
        return out
    import torch

    return torch.from_numpy(out)
