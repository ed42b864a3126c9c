"""Inference backends of the deployed PFDN behind one switch: ``--backend`` of ``basicsr infer`` and ``basicsr
profile``, ``val.backend`` in test and validation ymls.

=============  ==========================================================  =========================================
backend        runs                                                        precisions
=============  ==========================================================  =========================================
torch          the plain eager forward: the reference                      fp32; fp16 on CUDA; bf16 where supported
compile        ``torch.compile``, static shapes (CUDA graphs on CUDA)      as torch
openvino       OpenVINO on the ONNX export (CPU): one compiled model with   fp32; bf16 where the CPU has it
               dynamic height and width, latency hint, threads pinned
onnxruntime    ONNX Runtime on the ONNX export (CPU; CUDA with its CUDA    fp32
               provider)
auto           the cheapest for the work at hand (``Workload``: sizes,     as asked
               pixels, weight refreshes) by the costs bench_infer measures
=============  ==========================================================  =========================================

Each backend is one module declaring its own facts (``base.Runner``); this module knows only their order and picks.
The optional runtimes come with ``pip install 'pfdn[fast]'``. Nothing changes silently: a runtime, device or
precision that is missing falls back with a one-line note saying what runs instead, and fp32 agrees with the
plain forward to within 1e-4 on real images (tested).
"""
from typing import Iterable, Optional, Tuple

import torch

from ...errors import OptionsError
from .base import DTYPES, INSTALL, Runner, cached_precisions, parse_device, runs_graph
from .onnxruntime_runner import OnnxRuntimeRunner
from .openvino_runner import OpenVINORunner
from .torch_runner import CompileRunner, TorchRunner

RUNNERS = {r.name: r for r in (TorchRunner, CompileRunner, OpenVINORunner, OnnxRuntimeRunner)}
BACKENDS = ('auto',) + tuple(RUNNERS)
PRECISIONS = ('auto',) + tuple(DTYPES)
# What --dtype auto may pick, per device type, fastest first: the precisions that keep the picture, i.e. the released
# weights' Set5 (x4, PSNR on Y) within 0.01 dB of fp32, measured. CPU bf16: OpenVINO -0.0026 dB, torch -0.0051 (AMD
# EPYC, AVX512-BF16); OpenVINO -0.0056 (-0.0022 with OpenVINO 2026.4.1), torch -0.0037 (Intel Xeon, AMX); compile's
# bf16 (-0.0100 on the EPYC, -0.0089 on the Xeon) is at the line and has no auto costs. CUDA fp16: -0.0002 (H200;
# its bf16, -0.0093, is too near the line to be a default). Where the hardware lacks one, it is not native there
# (``precisions``), so auto runs fp32.
AUTO_DTYPES = {'cpu': ('bf16', 'fp32'), 'cuda': ('fp16', 'fp32')}
# fastest first, per device type (bench/bench_infer.py measures them); what auto and the fallbacks choose from
AUTO_ORDER = {'cpu': ('openvino', 'onnxruntime', 'torch'), 'cuda': ('compile', 'torch')}
# seconds per million LR pixels of the plain fp32 forward, which the backends' relative costs scale. The costs are
# bench_infer's figures on a 2-core AMD EPYC with AVX512-BF16 (its tables at 256x256 and 339x510, and on Urban100's
# LR folder: one image at a time and as basicsr infer runs it); CUDA's from GPU runs of the same kind
TORCH_SECONDS_PER_MPX = {'cpu': 3.9, 'cuda': 0.02}


class Workload:
    """What a runner will be asked to do: ``sizes`` {(h, w): images} of LR inputs per pass, ``passes`` over them,
    and whether the weights change between passes (``refresh``: validation during training)."""

    def __init__(self, sizes: dict, passes: int = 1, refresh: bool = False):
        self.sizes, self.passes, self.refresh = dict(sizes), max(1, passes), refresh

    @classmethod
    def of(cls, shapes: Iterable[Tuple[int, int]], **kwargs) -> 'Workload':
        counts = {}
        for hw in shapes:
            counts[tuple(hw)] = counts.get(tuple(hw), 0) + 1
        return cls(counts, **kwargs)

    def seconds(self, backend: str, device_type: str, dtype: str = 'fp32') -> float:
        """The cost model's estimate of the whole workload on ``backend`` in ``dtype``."""
        runner = RUNNERS[backend]
        build, per_size, relative = runner.costs[device_type][dtype]
        mpx = sum(h * w * n for (h, w), n in self.sizes.items()) / 1e6
        builds = self.passes if (self.refresh and runner.rebuilt_on_refresh) else 1
        return (build * builds + per_size * len(self.sizes)
                + relative * mpx * self.passes * TORCH_SECONDS_PER_MPX[device_type])

    def __repr__(self):
        return (f'{sum(self.sizes.values())} images of {len(self.sizes)} sizes x {self.passes} passes'
                + (', weights refreshed' if self.refresh else ''))


def installed(backend: str) -> bool:
    """Whether the backend's runtime can be imported here."""
    return backend in RUNNERS and RUNNERS[backend].installed()


def precisions(backend: str, device: torch.device) -> Tuple[str, ...]:
    """The precisions ``backend`` runs natively on ``device``."""
    return cached_precisions(RUNNERS[backend], device)


def _costed(backend: str, device: torch.device, dtype: str) -> bool:
    return dtype in RUNNERS[backend].costs.get(device.type, {})


def resolve(backend: str = 'auto', device='cpu', dtype: str = 'fp32', warn=print,
            workload: Optional[Workload] = None) -> Tuple[str, torch.device, str]:
    """(backend, device, dtype) that will actually run: missing devices, runtimes and precisions fall back with
    a note through ``warn``. ``dtype`` auto: the fastest pair of backend (``backend``, or any with auto) and a
    precision of ``AUTO_DTYPES`` that the device runs natively, for ``workload`` when given (else per forward).
    OptionsError for names that do not exist."""
    if backend not in BACKENDS:
        raise OptionsError(f"must be one of {', '.join(BACKENDS)}, got '{backend}'", 'backend')
    if dtype not in PRECISIONS:
        raise OptionsError(f"must be one of {', '.join(PRECISIONS)}, got '{dtype}'", 'dtype')
    device = parse_device(device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        warn('note: CUDA is not available; running on the CPU instead')
        device = torch.device('cpu')
    usable = [b for b in AUTO_ORDER[device.type] if installed(b) and RUNNERS[b].runs_on(device)]
    if backend != 'auto':
        if not installed(backend):
            fallback = usable[0]
            warn(f'note: the {backend} backend is not installed ({INSTALL}); using {fallback}')
            backend = fallback
        elif not RUNNERS[backend].runs_on(device):
            if backend == 'openvino':
                warn(f'note: OpenVINO runs on the CPU here, not on {device}; running it on the CPU')
                device = torch.device('cpu')
            else:
                fallback = next(b for b in usable if b != backend)
                warn(f'note: the {backend} backend cannot run on {device} here; using {fallback}')
                backend = fallback
    candidates = usable if backend == 'auto' else [backend]
    if dtype == 'auto':
        # every (backend, precision) pair that keeps the picture and runs natively; the cheapest for the workload,
        # else per forward (a backend that compiles per size is left out without a workload)
        pairs = [(b, p) for b in candidates for p in AUTO_DTYPES[device.type]
                 if p in precisions(b, device) and _costed(b, device, p)] or [(candidates[0], 'fp32')]
        if workload is not None:
            chosen, dtype = min(pairs, key=lambda bp: workload.seconds(bp[0], device.type, bp[1]))
        else:
            quick = [bp for bp in pairs if RUNNERS[bp[0]].costs[device.type][bp[1]][1] == 0] or pairs
            chosen, dtype = min(quick, key=lambda bp: RUNNERS[bp[0]].costs[device.type][bp[1]][2])
        return chosen, device, dtype
    if backend == 'auto':
        # among the backends that run the asked precision natively (else all of them): the fastest per forward, or
        # with a workload, the cheapest for it (torch is always a candidate, so auto is never the slower choice)
        native = [b for b in usable if dtype in precisions(b, device)] or usable
        backend = native[0] if workload is None else min(
            native, key=lambda b: workload.seconds(b, device.type, dtype if _costed(b, device, dtype) else 'fp32'))
    native = precisions(backend, device)
    if dtype not in native:
        to = 'fp16' if dtype == 'bf16' and 'fp16' in native else 'fp32'
        why = {'fp16': 'needs CUDA' if device.type == 'cpu' else f'is not supported by {backend}',
               'bf16': 'is not supported by this hardware' if backend in ('torch', 'compile')
               else f'is not supported by {backend} here'}[dtype]
        warn(f'note: {dtype} {why}; using {to}')
        dtype = to
    return backend, device, dtype


def make_runner(net, backend: str = 'auto', device='cpu', dtype: str = 'fp32', warn=print, threads: int = None,
                workload: Optional[Workload] = None, streams: int = 1) -> Runner:
    """A callable ``x -> SR`` running the deployed PFDN ``net`` (N x C x H x W float in [0, 1], any device) on the
    resolved backend, device and precision (``auto``: by ``workload`` when given). The result is a float tensor
    (on ``runner.device`` for torch backends, on the CPU for the others). ``net`` is not modified; new weights of
    the same network go in with ``runner.refresh(net)``. ``streams`` > 1 asks for that many images at once from
    threads of the caller's (``runner.streams`` says how many the backend took: OpenVINO's throughput mode splits
    its threads among them; the others run one at a time)."""
    if not getattr(net, 'deploy', True):
        raise ValueError('make_runner needs the deployed form; reparameterize the network first')
    if not runs_graph(net):  # another arch (BasicSR's MSRResNet, ...): the runtimes run PFDN's graph
        if backend not in ('auto', 'torch'):
            warn(f'note: the {backend} backend runs PFDN only; using torch for {type(net).__name__}')
        backend = 'torch'
    backend, device, dtype = resolve(backend, device, dtype, warn, workload)
    threads = threads or torch.get_num_threads()
    if backend == 'openvino':
        return OpenVINORunner(net, device, dtype, threads, streams)
    return RUNNERS[backend](net, device, dtype, threads)
