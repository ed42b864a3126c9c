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

Each backend is one module declaring its own facts (``base.Runner``); this module knows only their order and picks
(``resolve``, the one chooser). It imports no torch: torch's facts (CUDA, its native precisions) are asked only where
they can change the answer, so a choice of OpenVINO on the CPU is made without them (``build``: a checkpoint the
export cache knows runs without torch). The optional runtimes come with ``pip install 'pfdn[fast]'``. Nothing
changes silently: a runtime, device or precision that is missing falls back with a one-line note saying what runs
instead, and fp32 agrees with the plain forward to within 1e-4 on real images (tested).
"""
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple

from ...errors import OptionsError
from .base import (INSTALL, PRECISION_NAMES, Device, Runner, cached_precisions, cuda_available, default_threads,
                   parse_device, runs_graph)
from .costs import AUTO_DTYPES, AUTO_ORDER, TORCH_SECONDS_PER_MPX, Workload, pick  # noqa: F401 (theirs, re-exported)
from .onnxruntime_runner import OnnxRuntimeRunner
from .openvino_runner import OpenVINORunner
from .torch_runner import CompileRunner, TorchRunner

RUNNERS = {r.name: r for r in (TorchRunner, CompileRunner, OpenVINORunner, OnnxRuntimeRunner)}
BACKENDS = ('auto',) + tuple(RUNNERS)
PRECISIONS = ('auto',) + PRECISION_NAMES
# what torch may answer when asked which precisions it runs natively, per device type: the chooser tries each before
# it asks (asking imports torch)
TORCH_MAY_RUN = {'cpu': (('fp32',), ('fp32', 'bf16')),
                 'cuda': (('fp32', 'fp16'), ('fp32', 'fp16', 'bf16'))}


class Choice(NamedTuple):
    """What will run: the backend, the device and the precision (``resolve``)."""
    backend: str
    device: Device
    dtype: str


def installed(backend: str) -> bool:
    """Whether the backend's runtime can be imported here."""
    return backend in RUNNERS and RUNNERS[backend].installed()


def precisions(backend: str, device: Any) -> Tuple[str, ...]:
    """The precisions ``backend`` runs natively on ``device``."""
    return cached_precisions(RUNNERS[backend], parse_device(device))


def _pick(candidates: Sequence[str], device: Device, dtype: str, workload: Optional[Workload]) -> Tuple[str, str]:
    """``costs.pick`` among ``candidates``, asking the torch backends' precisions only where every answer torch
    could give would not choose the same: where it would, and that is no torch backend, torch stays unimported."""
    own = [b for b in candidates if not RUNNERS[b].runs_export]
    known: Dict[str, Sequence[str]] = {b: precisions(b, device) for b in candidates if b not in own}
    if own:
        outcomes = {pick(candidates, dict(known, **{b: answer for b in own}), dtype, device.type, workload)
                    for answer in TORCH_MAY_RUN[device.type]}
        if len(outcomes) == 1 and next(iter(outcomes))[0] not in own:
            return outcomes.pop()
        known.update({b: precisions(b, device) for b in own})
    return pick(candidates, known, dtype, device.type, workload)


def resolve(backend: str = 'auto', device: Any = 'cpu', dtype: str = 'fp32', warn: Callable[[str], None] = print,
            workload: Optional[Workload] = None) -> Choice:
    """What will actually run (``Choice``): missing devices, runtimes and precisions fall back with a note through
    ``warn``. ``dtype`` auto: the fastest pair of backend (``backend``, or any with auto) and a precision of
    ``AUTO_DTYPES`` that the device runs natively, for ``workload`` when given (else per forward). OptionsError for
    names that do not exist."""
    if backend not in BACKENDS:
        raise OptionsError(f"must be one of {', '.join(BACKENDS)}, got '{backend}'", 'backend')
    if dtype not in PRECISIONS:
        raise OptionsError(f"must be one of {', '.join(PRECISIONS)}, got '{dtype}'", 'dtype')
    device = parse_device(device)
    if device.type == 'cuda' and not cuda_available():
        warn('note: CUDA is not available; running on the CPU instead')
        device = Device('cpu')
    usable = [b for b in AUTO_ORDER[device.type] if installed(b) and RUNNERS[b].runs_on(device)]
    if backend != 'auto':
        if not installed(backend):
            fallback = usable[0]
            warn(f'note: the {backend} backend is not installed ({INSTALL}); using {fallback}')
            backend = fallback
        elif not RUNNERS[backend].runs_on(device):
            if backend == 'openvino':
                warn(f'note: OpenVINO runs on the CPU here, not on {device}; running it on the CPU')
                device = Device('cpu')
            else:
                fallback = next(b for b in usable if b != backend)
                warn(f'note: the {backend} backend cannot run on {device} here; using {fallback}')
                backend = fallback
    backend, picked = _pick(usable if backend == 'auto' else [backend], device, dtype, workload)
    if dtype == 'auto':  # a pair that runs natively
        return Choice(backend, device, picked)
    native = precisions(backend, device)
    if dtype not in native:
        to = 'fp16' if dtype == 'bf16' and 'fp16' in native else 'fp32'
        why = {'fp16': 'needs CUDA' if device.type == 'cpu' else f'is not supported by {backend}',
               'bf16': 'is not supported by this hardware' if backend in ('torch', 'compile')
               else f'is not supported by {backend} here'}[dtype]
        warn(f'note: {dtype} {why}; using {to}')
        dtype = to
    return Choice(backend, device, dtype)


def build(net: Any, choice: Choice, threads: Optional[int] = None, streams: int = 1) -> Runner:
    """The runner of ``choice`` for ``net`` (a deployed network, or for a backend that ``runs_export`` a graph the
    export cache recalled), no choosing: ``resolve`` chose."""
    threads = threads or default_threads()
    if choice.backend == 'openvino':
        return OpenVINORunner(net, choice.device, choice.dtype, threads, streams)
    return RUNNERS[choice.backend](net, choice.device, choice.dtype, threads)


def make_runner(net: Any, backend: str = 'auto', device: Any = 'cpu', dtype: str = 'fp32',
                warn: Callable[[str], None] = print, threads: Optional[int] = None,
                workload: Optional[Workload] = None, streams: int = 1) -> Runner:
    """A callable ``x -> SR`` running the deployed PFDN ``net`` (N x C x H x W float in [0, 1], any device) on the
    resolved backend, device and precision (``auto``: by ``workload`` when given). The result is a float tensor
    (on ``runner.device`` for torch backends, on the CPU for the others; a numpy input gives the runtimes' results
    as float32 arrays). ``net`` is not modified; new weights of the same network go in with ``runner.refresh(net)``.
    ``streams`` > 1 asks for that many images at once from threads of the caller's (``runner.streams`` says how many
    the backend took: OpenVINO's throughput mode splits its threads among them; the others run one at a time)."""
    if not getattr(net, 'deploy', True):
        raise ValueError('make_runner needs the deployed form; reparameterize the network first')
    if not runs_graph(net):  # another arch (BasicSR's MSRResNet, ...): the runtimes run PFDN's graph
        if backend not in ('auto', 'torch'):
            warn(f'note: the {backend} backend runs PFDN only; using torch for {type(net).__name__}')
        backend = 'torch'
    return build(net, resolve(backend, device, dtype, warn, workload), threads, streams)
