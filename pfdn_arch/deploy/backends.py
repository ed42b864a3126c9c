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

The optional runtimes come with ``pip install 'pfdn[fast]'``. Nothing changes silently: a runtime, device or
precision that is missing falls back with a one-line note saying what runs instead, and fp32 agrees with the
plain forward to within 1e-4 on real images (tested).
"""
import copy
import functools
import os
import tempfile

import numpy as np
import torch

from ..errors import OptionsError
from ..errors import installed as package_installed

BACKENDS = ('auto', 'torch', 'compile', 'openvino', 'onnxruntime')
# What each backend costs, per device type, for ``auto``: (seconds to build: export and compile, seconds to compile
# each new input size, seconds per million LR pixels relative to torch). bench/bench_infer.py --costs measures them
# on the machine it runs on; these are its figures on a 2-core AMD EPYC (fp32) and, for CUDA, from GPU runs of the
# same kind. A rebuild is due whenever the weights change (validation during training) for the runtimes that hold
# the weights as constants; torch and compile take new weights in place.
COSTS = {'cpu': {'torch': (0.0, 0.0, 1.0), 'openvino': (0.9, 0.0, 0.5), 'onnxruntime': (0.7, 0.0, 0.6),
                 'compile': (5.0, 30.0, 0.65)},
         'cuda': {'torch': (0.0, 0.0, 1.0), 'compile': (1.0, 10.0, 0.4)}}
TORCH_SECONDS_PER_MPX = {'cpu': 3.8, 'cuda': 0.02}  # the plain fp32 forward, per million LR pixels
REBUILT_ON_REFRESH = ('openvino', 'onnxruntime')


class Workload:
    """What a runner will be asked to do: ``sizes`` {(h, w): images} of LR inputs per pass, ``passes`` over them,
    and whether the weights change between passes (``refresh``: validation during training)."""

    def __init__(self, sizes, passes=1, refresh=False):
        self.sizes, self.passes, self.refresh = dict(sizes), max(1, passes), refresh

    @classmethod
    def of(cls, shapes, **kwargs):
        counts = {}
        for hw in shapes:
            counts[tuple(hw)] = counts.get(tuple(hw), 0) + 1
        return cls(counts, **kwargs)

    def seconds(self, backend, device_type):
        """The cost model's estimate of the whole workload on ``backend``."""
        build, per_size, relative = COSTS[device_type][backend]
        mpx = sum(h * w * n for (h, w), n in self.sizes.items()) / 1e6
        builds = self.passes if (self.refresh and backend in REBUILT_ON_REFRESH) else 1
        return (build * builds + per_size * len(self.sizes)
                + relative * mpx * self.passes * TORCH_SECONDS_PER_MPX[device_type])

    def __repr__(self):
        return (f'{sum(self.sizes.values())} images of {len(self.sizes)} sizes x {self.passes} passes'
                + (', weights refreshed' if self.refresh else ''))


DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}
# fastest first, per device type (bench/bench_infer.py measures them)
AUTO_ORDER = {'cpu': ('openvino', 'onnxruntime', 'torch'), 'cuda': ('compile', 'torch')}
INSTALL = "pip install 'pfdn[fast]'"


def installed(backend):
    """Whether the backend's runtime can be imported here."""
    if backend == 'openvino':
        return package_installed('openvino')
    if backend == 'onnxruntime':
        return package_installed('onnxruntime') and package_installed('onnx')
    if backend == 'compile':
        return hasattr(torch, 'compile')
    return backend == 'torch'


def _runs_on(backend, device):
    if backend in ('torch', 'compile'):
        if backend == 'compile' and device.type == 'cuda':
            from torch.utils._triton import has_triton
            return has_triton()  # inductor's CUDA kernels are Triton kernels
        return True
    if backend == 'openvino':
        return device.type == 'cpu'
    import onnxruntime as ort
    return device.type == 'cpu' or 'CUDAExecutionProvider' in ort.get_available_providers()


@functools.lru_cache(maxsize=None)
def _precisions(backend, device):
    """The precisions a backend runs natively on a device (asked once per process: OpenVINO's query is slow)."""
    if backend == 'onnxruntime':
        return ('fp32',)
    if backend == 'openvino':
        import openvino as ov
        return ('fp32', 'bf16') if 'BF16' in ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES') else ('fp32',)
    if device.type == 'cuda':
        return ('fp32', 'fp16', 'bf16') if torch.cuda.is_bf16_supported() else ('fp32', 'fp16')
    bf16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return ('fp32', 'bf16') if bf16 else ('fp32',)


def parse_device(device):
    """torch.device from 'cpu', 'cuda' or 'cuda:N'; OptionsError naming the choices otherwise."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise OptionsError(f"unknown device '{device}'; use cpu, cuda or cuda:N", 'device') from None
    if parsed.type not in ('cpu', 'cuda'):
        raise OptionsError(f"unsupported device '{device}'; use cpu, cuda or cuda:N", 'device')
    return parsed


def resolve(backend='auto', device='cpu', dtype='fp32', warn=print, workload=None):
    """(backend, device, dtype) that will actually run: missing devices, runtimes and precisions fall back with
    a note through ``warn``. OptionsError for names that do not exist."""
    if backend not in BACKENDS:
        raise OptionsError(f"must be one of {', '.join(BACKENDS)}, got '{backend}'", 'backend')
    if dtype not in DTYPES:
        raise OptionsError(f"must be one of {', '.join(DTYPES)}, got '{dtype}'", 'dtype')
    device = parse_device(device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        warn('note: CUDA is not available; running on the CPU instead')
        device = torch.device('cpu')
    order = AUTO_ORDER[device.type]
    usable = [b for b in order if installed(b) and _runs_on(b, device)]
    if backend == 'auto':
        # among the backends that run the asked precision natively (else all of them): the fastest per forward, or
        # with a workload, the cheapest for it (torch is always a candidate, so auto is never the slower choice)
        native = [b for b in usable if dtype in _precisions(b, device)] or usable
        backend = native[0] if workload is None else min(native, key=lambda b: workload.seconds(b, device.type))
    elif not installed(backend):
        fallback = usable[0]
        warn(f'note: the {backend} backend is not installed ({INSTALL}); using {fallback}')
        backend = fallback
    elif not _runs_on(backend, device):
        if backend == 'openvino':
            warn(f'note: OpenVINO runs on the CPU here, not on {device}; running it on the CPU')
            device = torch.device('cpu')
        else:
            fallback = next(b for b in usable if b != backend)
            warn(f'note: the {backend} backend cannot run on {device} here; using {fallback}')
            backend = fallback
    native = _precisions(backend, device)
    if dtype not in native:
        to = 'fp16' if dtype == 'bf16' and 'fp16' in native else 'fp32'
        why = {'fp16': 'needs CUDA' if device.type == 'cpu' else f'is not supported by {backend}',
               'bf16': 'is not supported by this hardware' if backend in ('torch', 'compile')
               else f'is not supported by {backend} here'}[dtype]
        warn(f'note: {dtype} {why}; using {to}')
        dtype = to
    return backend, device, dtype


def make_runner(net, backend='auto', device='cpu', dtype='fp32', warn=print, threads=None, workload=None,
                streams=1):
    """A callable ``x -> SR`` running the deployed PFDN ``net`` (N x C x H x W float in [0, 1], any device) on the
    resolved backend, device and precision (``auto``: by ``workload`` when given). The result is a float tensor
    (on ``runner.device`` for torch backends, on the CPU for the others). ``net`` is not modified; new weights of
    the same network go in with ``runner.refresh(net)``. ``streams`` > 1 asks for that many images at once from
    threads of the caller's (``runner.streams`` says how many the backend took: OpenVINO's throughput mode splits
    its threads among them; the others run one at a time)."""
    if not getattr(net, 'deploy', True):
        raise ValueError('make_runner needs the deployed form; reparameterize the network first')
    if not hasattr(net, 'check_input'):  # another arch (BasicSR's MSRResNet, ...): the runtimes run PFDN's graph
        if backend not in ('auto', 'torch'):
            warn(f'note: the {backend} backend runs PFDN only; using torch for {type(net).__name__}')
        backend = 'torch'
    backend, device, dtype = resolve(backend, device, dtype, warn, workload)
    threads = threads or torch.get_num_threads()
    if backend == 'openvino':
        return OpenVINORunner(net, device, dtype, threads, streams)
    cls = {'torch': TorchRunner, 'compile': CompileRunner, 'onnxruntime': OnnxRuntimeRunner}[backend]
    return cls(net, device, dtype, threads)


class Runner:
    """What every backend shares: the resolved choice, the network's scale and input checks."""
    name = None

    def __init__(self, net, device, dtype, threads):
        self.device, self.dtype, self.threads = device, dtype, threads
        self.upscale, self.num_in_ch = getattr(net, 'upscale', None), getattr(net, 'num_in_ch', None)
        self.check_input = getattr(net, 'check_input', lambda x: None)
        self.builds = 0  # exports and compilations so far: what refreshing saves
        self.streams = 1  # images it runs at once, each from a thread of the caller's

    def refresh(self, net):
        """Take ``net``'s weights (the same network, trained further)."""
        raise NotImplementedError

    def __repr__(self):
        return f'{self.name} ({self.dtype}, {self.device})'


class TorchRunner(Runner):
    """The plain eager forward (the reference), in the asked precision."""
    name = 'torch'

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
    MAX_SHAPES = 4

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


def onnx_model_file(net, folder):
    """The ONNX export of ``net`` (deployed, fp32, dynamic batch/height/width) written into ``folder``."""
    from .formats import export_onnx

    path = os.path.join(folder, 'pfdn.onnx')
    export_onnx(copy.deepcopy(net).float().cpu(), path)
    return path


class OpenVINORunner(Runner):
    """OpenVINO on the ONNX export: one compiled model with dynamic height and width for every input size (as fast
    as a statically shaped one at a fixed size, and no compilation per new size). One image at a time: the latency
    hint, ``threads`` inference threads pinned to cores. With ``streams`` > 1 (a folder of images): the throughput
    hint, ``streams`` single-threaded streams run by the caller's threads, so that the caller's own work (decoding,
    encoding) does not stall a parallel region that waits for all its threads. The weights are constants of the
    compiled model: ``refresh`` rebuilds it."""
    name = 'openvino'

    def __init__(self, net, device, dtype, threads, streams=1):
        super().__init__(net, device, dtype, threads)
        precision = 'bf16' if dtype == 'bf16' else 'f32'
        self.streams = max(1, min(streams, threads))
        if self.streams > 1:
            self.config = {'PERFORMANCE_HINT': 'THROUGHPUT', 'NUM_STREAMS': self.streams,
                           'INFERENCE_NUM_THREADS': threads, 'INFERENCE_PRECISION_HINT': precision}
        else:
            self.config = {'PERFORMANCE_HINT': 'LATENCY', 'INFERENCE_NUM_THREADS': threads,
                           'ENABLE_CPU_PINNING': True, 'INFERENCE_PRECISION_HINT': precision}
        self.refresh(net)

    def refresh(self, net):
        import queue

        import openvino as ov

        core = ov.Core()
        with tempfile.TemporaryDirectory() as folder:
            model = core.read_model(onnx_model_file(net, folder))
        compiled = core.compile_model(model, 'CPU', self.config)
        self.requests = queue.Queue()  # one per stream, taken by the calling thread for its forward
        for _ in range(self.streams):
            self.requests.put(compiled.create_infer_request())
        self.builds += 1

    def __call__(self, x):
        self.check_input(x)
        arr = np.ascontiguousarray(x.detach().to('cpu', torch.float32).numpy())
        request = self.requests.get()
        try:
            request.infer({0: arr})
            return torch.from_numpy(request.get_output_tensor(0).data.copy())
        finally:
            self.requests.put(request)


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime on the ONNX export (all graph optimizations, ``threads`` intra-op threads). The weights are
    constants of the session: ``refresh`` rebuilds it."""
    name = 'onnxruntime'

    def __init__(self, net, device, dtype, threads):
        super().__init__(net, device, dtype, threads)
        self.refresh(net)

    def refresh(self, net):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ['CPUExecutionProvider']
        if self.device.type == 'cuda':
            providers.insert(0, ('CUDAExecutionProvider', {'device_id': self.device.index or 0}))
        with tempfile.TemporaryDirectory() as folder:
            self.session = ort.InferenceSession(onnx_model_file(net, folder), options, providers=providers)
        self.builds += 1

    def __call__(self, x):
        self.check_input(x)
        arr = np.ascontiguousarray(x.detach().to('cpu', torch.float32).numpy())
        return torch.from_numpy(self.session.run(None, {'lr': arr})[0])


class FileRunner(Runner):
    """A model file made elsewhere (an int8 OpenVINO IR or QDQ ONNX from ``basicsr export --int8``) on OpenVINO (.xml
    or .onnx) or ONNX Runtime (.onnx). Its scale is read off its output for a small input."""

    def __init__(self, path, backend, threads):
        import torch as _torch

        self.name, self.path = backend, path
        self.device, self.dtype, self.threads, self.builds, self.streams = _torch.device('cpu'), 'int8', threads, 1, 1
        self.num_in_ch = 3
        if backend == 'openvino':
            import openvino as ov
            # as OpenVINORunner's latency mode; f32 for what stays in float (this CPU's default may be bf16)
            compiled = ov.Core().compile_model(path, 'CPU', {'PERFORMANCE_HINT': 'LATENCY',
                                                             'INFERENCE_NUM_THREADS': threads,
                                                             'ENABLE_CPU_PINNING': True,
                                                             'INFERENCE_PRECISION_HINT': 'f32'})
            request = compiled.create_infer_request()

            def run(arr):
                request.infer({0: arr})
                return request.get_output_tensor(0).data.copy()
        else:
            import onnxruntime as ort
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
            name = session.get_inputs()[0].name

            def run(arr):
                return session.run(None, {name: arr})[0]
        self._run = run
        probe = np.zeros((1, 3, 16, 16), np.float32)
        self.upscale = self._run(probe).shape[-1] // 16

    def check_input(self, x):
        from ..archs.esa import MIN_INPUT_SIZE
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'expects an N x 3 x H x W input, got shape {tuple(x.shape)}')
        if min(x.shape[-2:]) < MIN_INPUT_SIZE:
            raise ValueError(f'needs an LR input of at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} pixels, got '
                             f'{x.shape[-2]}x{x.shape[-1]}; pad or use a larger image')

    def refresh(self, net):
        raise ValueError('a model file cannot take new weights')

    def __call__(self, x):
        self.check_input(x)
        return torch.from_numpy(self._run(np.ascontiguousarray(x.detach().to('cpu', torch.float32).numpy())))

    def __repr__(self):
        return f'{self.name} ({os.path.basename(self.path)}, cpu)'


MODEL_FILES = ('.xml', '.onnx')


def file_runner(path, backend='auto', device='cpu', threads=None, warn=print):
    """A runner for a model file (``MODEL_FILES``): an OpenVINO IR runs on OpenVINO; an ONNX file on ONNX Runtime
    (auto) or OpenVINO. A backend that cannot run it falls back with one note."""
    threads = threads or torch.get_num_threads()
    if parse_device(device).type != 'cpu':
        warn(f'note: {os.path.basename(path)} runs on the CPU here (its runtimes), not on {device}')
    ext = os.path.splitext(path)[1].lower()
    choices = ['openvino'] if ext == '.xml' else ['onnxruntime', 'openvino']
    usable = [b for b in choices if installed(b)]
    if not usable:
        raise OptionsError(f"running {os.path.basename(path)} needs {' or '.join(choices)}: {INSTALL}", 'backend')
    if backend not in usable:
        if backend != 'auto':
            warn(f'note: the {backend} backend cannot run {os.path.basename(path)}; using {usable[0]}')
        backend = usable[0]
    try:
        return FileRunner(path, backend, threads)
    except Exception as err:  # the runtimes raise their own types for a file that is not a model
        from ..errors import CheckpointError
        kind = 'an OpenVINO IR' if ext == '.xml' else 'an ONNX model'
        raise CheckpointError(f'cannot be loaded as {kind} by {backend} ({str(err).splitlines()[0][:160]}); give a '
                              f'model file basicsr export wrote, or a .pth checkpoint', path) from None
