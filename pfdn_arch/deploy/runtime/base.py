"""What every backend runner shares: the precisions by name, the device parsing, and ``Runner``: the resolved
choice, the network's scale and input checks, and the facts a backend declares about itself (its name, whether it is
installed here, the devices and precisions it runs, its costs for ``auto``, and whether new weights rebuild it)."""
import functools
import os
from typing import Dict, Tuple

import numpy as np
import torch

from ...archs import PFDN_SPEC, spec_for
from ...errors import OptionsError

DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}
INSTALL = "pip install 'pfdn[fast]'"


def parse_device(device) -> torch.device:
    """torch.device from 'cpu', 'cuda' or 'cuda:N'; OptionsError naming the choices otherwise."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise OptionsError(f"unknown device '{device}'; use cpu, cuda or cuda:N", 'device') from None
    if parsed.type not in ('cpu', 'cuda'):
        raise OptionsError(f"unsupported device '{device}'; use cpu, cuda or cuda:N", 'device')
    return parsed


class Runner:
    """A callable ``x -> SR`` for one backend. Class attributes and class methods are the backend's facts, read by
    ``choose.py``; an instance holds the resolved device, precision and threads.

    Backend facts: ``name``; ``costs`` {device type: {precision: (seconds to build: export and compile, seconds to
    compile each new input size, seconds per million LR pixels relative to torch fp32)}} as bench/bench_infer.py
    measures them (a precision without costs is not one ``--dtype auto`` picks);
    ``rebuilt_on_refresh``: whether new weights mean a rebuild (the runtimes that hold them as constants)."""
    name: str = ''
    costs: Dict[str, Dict[str, Tuple[float, float, float]]] = {}
    rebuilt_on_refresh: bool = False

    @classmethod
    def installed(cls) -> bool:
        """Whether the backend's runtime can be imported here."""
        return True

    @classmethod
    def runs_on(cls, device: torch.device) -> bool:
        """Whether it runs on ``device`` here (installed assumed)."""
        return True

    @classmethod
    def precisions(cls, device: torch.device) -> Tuple[str, ...]:
        """The precisions it runs natively on ``device``."""
        return ('fp32',)

    def __init__(self, net, device: torch.device, dtype: str, threads: int):
        self.device, self.dtype, self.threads = device, dtype, threads
        self.upscale, self.num_in_ch = getattr(net, 'upscale', None), getattr(net, 'num_in_ch', None)
        self.check_input = getattr(net, 'check_input', lambda x: None)
        self.builds = 0  # exports and compilations so far: what refreshing saves
        self.streams = 1  # images it runs at once, each from a thread of the caller's

    def refresh(self, net) -> None:
        """Take ``net``'s weights (the same network, trained further)."""
        raise NotImplementedError

    def __repr__(self):
        return f'{self.name} ({self.dtype}, {self.device})'


class ModelFile(Runner):
    """A runner of a model file made elsewhere (``path``): its inputs checked as PFDN's (the files hold its graph),
    no new weights, named by its file and where it runs (``where``)."""
    path: str = ''
    where: str = 'cpu'

    def check_input(self, x):
        PFDN_SPEC.check_input(x, self.num_in_ch)

    def refresh(self, net):
        raise ValueError('a model file cannot take new weights')

    def __repr__(self):
        return f'{self.name} ({os.path.basename(self.path)}, {self.where})'


def runs_graph(net) -> bool:
    """Whether the runtimes can run ``net``: an architecture with a spec (its export graph); others (BasicSR's
    MSRResNet, ...) run on torch only."""
    return spec_for(net) is not None


@functools.lru_cache(maxsize=None)
def cached_precisions(runner: type, device: torch.device) -> Tuple[str, ...]:
    """``runner.precisions(device)``, asked once per process (OpenVINO's query is slow)."""
    return runner.precisions(device)


def numpy_input(x: torch.Tensor):
    """A runtime's input: contiguous float32 on the CPU."""
    return np.ascontiguousarray(x.detach().to('cpu', torch.float32).numpy())


