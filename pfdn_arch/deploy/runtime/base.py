"""What every backend runner shares: the precisions by name, the device parsing, the default number of threads, and
``Runner``: the resolved choice, the network's scale and input checks, and the facts a backend declares about itself
(its name, whether it is installed here, the devices and precisions it runs, its costs for ``auto``, and whether new
weights rebuild it).

Importing this (and the runtimes' runners, ``openvino_runner``, ``onnxruntime_runner``, ``model_file``) does not
import torch: ``basicsr infer`` of a checkpoint the export cache knows runs OpenVINO without it (``quick_start``).
The runtimes' runners given a numpy array return one, given a torch tensor a tensor; the torch runners take either
and return tensors on their device.
"""
import functools
import os
import re
import sys
from typing import Any, Dict, NamedTuple, Optional, Tuple, Type

import numpy as np

from ...archs.pfdn.limits import check_lr_input
from ...errors import OptionsError

PRECISION_NAMES = ('fp32', 'fp16', 'bf16')
INSTALL = "pip install 'pfdn[fast]'"


class Device(NamedTuple):
    """Where a runner built without torch runs (the CPU: model files, ``quick_start``): what is read of a
    ``torch.device``, its type and its name."""
    type: str

    def __str__(self):
        return self.type


CPU = Device('cpu')


def parse_device(device):
    """torch.device from 'cpu', 'cuda' or 'cuda:N'; OptionsError naming the choices otherwise."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise OptionsError(f"unknown device '{device}'; use cpu, cuda or cuda:N", 'device') from None
    if parsed.type not in ('cpu', 'cuda'):
        raise OptionsError(f"unsupported device '{device}'; use cpu, cuda or cuda:N", 'device')
    return parsed


def default_threads() -> int:
    """The threads a runtime runs on unless told: torch's own number where torch is loaded, else what torch would
    choose, so that a run with torch and one without (``quick_start``) split the cores alike: ``OMP_NUM_THREADS``,
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
    ``rebuilt_on_refresh``: whether new weights mean a rebuild (the runtimes that hold them as constants)."""
    name: str = ''
    costs: Dict[str, Dict[str, Tuple[float, float, float]]] = {}
    rebuilt_on_refresh: bool = False

    @classmethod
    def installed(cls) -> bool:
        """Whether the backend's runtime can be imported here."""
        return True

    @classmethod
    def runs_on(cls, device) -> bool:
        """Whether it runs on ``device`` (a torch.device or ``Device``) here (installed assumed)."""
        return True

    @classmethod
    def precisions(cls, device) -> Tuple[str, ...]:
        """The precisions it runs natively on ``device``."""
        return ('fp32',)

    def __init__(self, net, device, dtype: str, threads: int):
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

    def refresh(self, net) -> None:
        """Take ``net``'s weights (the same network, trained further)."""
        raise NotImplementedError

    def with_output(self, x, use):
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

    def check_input(self, x):
        check_lr_input(x.shape, self.num_in_ch)

    def refresh(self, net):
        raise ValueError('a model file cannot take new weights')

    def __repr__(self):
        return f'{self.name} ({os.path.basename(self.path)}, {self.where})'


def runs_graph(net) -> bool:
    """Whether the runtimes can run ``net``: an architecture with a spec (its export graph); others (BasicSR's
    MSRResNet, ...) run on torch only."""
    from ...archs import spec_for

    return spec_for(net) is not None


@functools.lru_cache(maxsize=None)
def cached_precisions(runner: Type[Runner], device: Any) -> Tuple[str, ...]:
    """``runner.precisions(device)``, asked once per process (OpenVINO's query is slow)."""
    return runner.precisions(device)


def numpy_input(x) -> np.ndarray:
    """A runtime's input: contiguous float32 on the CPU, from a numpy array or a torch tensor."""
    if isinstance(x, np.ndarray):
        return np.ascontiguousarray(x, np.float32)
    import torch

    return np.ascontiguousarray(x.detach().to('cpu', torch.float32).numpy())


def like_input(out: np.ndarray, x):
    """A runtime's result handed back as its input came: a numpy array, or a torch tensor."""
    if isinstance(x, np.ndarray):
        return out
    import torch

    return torch.from_numpy(out)
