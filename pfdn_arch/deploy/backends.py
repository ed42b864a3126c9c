"""Inference backends of the deployed PFDN behind one switch: ``--backend`` of ``basicsr infer`` and ``basicsr
profile``, ``val.backend`` in test and validation ymls.

=============  ==========================================================  =========================================
backend        runs                                                        precisions
=============  ==========================================================  =========================================
torch          the plain eager forward: the reference                      fp32; fp16 on CUDA; bf16 where supported
compile        ``torch.compile``, static shapes (CUDA graphs on CUDA)      as torch
openvino       OpenVINO on the ONNX export (CPU), one compiled model per   fp32; bf16 where the CPU has it
               input size, latency hint, threads pinned
onnxruntime    ONNX Runtime on the ONNX export (CPU; CUDA with its CUDA    fp32
               provider)
auto           the fastest measured for the device (bench/bench_infer.py)  as asked
=============  ==========================================================  =========================================

The optional runtimes come with ``pip install 'pfdn[fast]'``. Nothing changes silently: a runtime, device or
precision that is missing falls back with a one-line note saying what runs instead, and fp32 agrees with the
plain forward to within 1e-4 on real images (tested).
"""
import copy
import os
import tempfile
from collections import OrderedDict

import numpy as np
import torch

from ..errors import OptionsError

BACKENDS = ('auto', 'torch', 'compile', 'openvino', 'onnxruntime')
DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}
# fastest first, per device type (bench/bench_infer.py measures them)
AUTO_ORDER = {'cpu': ('openvino', 'onnxruntime', 'torch'), 'cuda': ('compile', 'torch')}
INSTALL = "pip install 'pfdn[fast]'"


def installed(backend):
    """Whether the backend's runtime can be imported here."""
    if backend == 'openvino':
        return importable('openvino')
    if backend == 'onnxruntime':
        return importable('onnxruntime') and importable('onnx')
    if backend == 'compile':
        return hasattr(torch, 'compile')
    return backend == 'torch'


def importable(module):
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


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


def _precisions(backend, device):
    """The precisions a backend runs natively on a device."""
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


def resolve(backend='auto', device='cpu', dtype='fp32', warn=print):
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
        # the fastest backend that runs the asked precision natively, else the fastest there is
        backend = next((b for b in usable if dtype in _precisions(b, device)), usable[0])
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


def make_runner(net, backend='auto', device='cpu', dtype='fp32', warn=print, threads=None):
    """A callable ``x -> SR`` running the deployed PFDN ``net`` (N x C x H x W float in [0, 1], any device) on the
    resolved backend, device and precision. The result is a float tensor (on ``runner.device`` for torch
    backends, on the CPU for the others). ``net`` is not modified."""
    if not getattr(net, 'deploy', True):
        raise ValueError('make_runner needs the deployed form; reparameterize the network first')
    if not hasattr(net, 'check_input'):  # another arch (BasicSR's MSRResNet, ...): the runtimes run PFDN's graph
        if backend not in ('auto', 'torch'):
            warn(f'note: the {backend} backend runs PFDN only; using torch for {type(net).__name__}')
        backend = 'torch'
    backend, device, dtype = resolve(backend, device, dtype, warn)
    threads = threads or torch.get_num_threads()
    cls = {'torch': TorchRunner, 'compile': CompileRunner, 'openvino': OpenVINORunner,
           'onnxruntime': OnnxRuntimeRunner}[backend]
    return cls(net, device, dtype, threads)


class Runner:
    """What every backend shares: the resolved choice, the network's scale and input checks."""
    name = None

    def __init__(self, net, device, dtype, threads):
        self.device, self.dtype, self.threads = device, dtype, threads
        self.upscale, self.num_in_ch = getattr(net, 'upscale', None), getattr(net, 'num_in_ch', None)
        self.check_input = getattr(net, 'check_input', lambda x: None)

    def __repr__(self):
        return f'{self.name} ({self.dtype}, {self.device})'


class TorchRunner(Runner):
    """The plain eager forward (the reference), in the asked precision."""
    name = 'torch'

    def __init__(self, net, device, dtype, threads):
        super().__init__(net, device, dtype, threads)
        self.net = copy.deepcopy(net).eval().to(device, DTYPES[dtype])

    @torch.inference_mode()
    def __call__(self, x):
        self.check_input(x)
        return self.net(x.to(self.device, DTYPES[self.dtype])).float()


class CompileRunner(TorchRunner):
    """``torch.compile`` with static shapes: an input size compiles once (seconds on a GPU, tens of seconds on a
    CPU), so it pays where sizes repeat (tiles, a folder of one size, batches); after ``MAX_SHAPES`` sizes, new
    ones run eager rather than compile again. On CUDA: CUDA graphs ('reduce-overhead') in channels_last. The
    compile options are this model's own (``options=``), nothing process-wide is changed."""
    name = 'compile'
    MAX_SHAPES = 4

    def __init__(self, net, device, dtype, threads):
        super().__init__(net, device, dtype, threads)
        if device.type == 'cuda':
            self.net = self.net.to(memory_format=torch.channels_last)
            self.compiled = torch.compile(self.net, dynamic=False, mode='reduce-overhead')
        else:
            # freezing folds the weights into the graph, so inductor can prepack them for oneDNN
            self.compiled = torch.compile(self.net, dynamic=False, options={'freezing': True})
        self.shapes = set()

    @torch.no_grad()
    def __call__(self, x):
        self.check_input(x)
        x = x.to(self.device, DTYPES[self.dtype])
        if tuple(x.shape) not in self.shapes and len(self.shapes) >= self.MAX_SHAPES:
            return self.net(x).float()
        self.shapes.add(tuple(x.shape))
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
    """OpenVINO on the ONNX export. Each input size gets its own statically shaped compiled model (a few tenths
    of a second to compile; static shapes let the CPU plugin pick its fastest kernels), kept for the last
    ``MAX_SHAPES`` sizes; latency hint, ``threads`` inference threads pinned to cores."""
    name = 'openvino'
    MAX_SHAPES = 8

    def __init__(self, net, device, dtype, threads):
        import openvino as ov

        super().__init__(net, device, dtype, threads)
        self.core = ov.Core()
        with tempfile.TemporaryDirectory() as folder:
            self.model = self.core.read_model(onnx_model_file(net, folder))
        self.config = {'PERFORMANCE_HINT': 'LATENCY', 'INFERENCE_NUM_THREADS': threads, 'ENABLE_CPU_PINNING': True,
                       'INFERENCE_PRECISION_HINT': 'bf16' if dtype == 'bf16' else 'f32'}
        self.compiled = OrderedDict()

    def compiled_for(self, shape):
        if shape in self.compiled:
            self.compiled.move_to_end(shape)
        else:
            model = self.model.clone()
            model.reshape(list(shape))
            self.compiled[shape] = self.core.compile_model(model, 'CPU', self.config).create_infer_request()
            if len(self.compiled) > self.MAX_SHAPES:
                self.compiled.popitem(last=False)
        return self.compiled[shape]

    def __call__(self, x):
        self.check_input(x)
        arr = np.ascontiguousarray(x.detach().to('cpu', torch.float32).numpy())
        request = self.compiled_for(arr.shape)
        request.infer({0: arr})
        return torch.from_numpy(request.get_output_tensor(0).data.copy())


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime on the ONNX export (all graph optimizations, ``threads`` intra-op threads)."""
    name = 'onnxruntime'

    def __init__(self, net, device, dtype, threads):
        import onnxruntime as ort

        super().__init__(net, device, dtype, threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ['CPUExecutionProvider']
        if device.type == 'cuda':
            providers.insert(0, ('CUDAExecutionProvider', {'device_id': device.index or 0}))
        with tempfile.TemporaryDirectory() as folder:
            self.session = ort.InferenceSession(onnx_model_file(net, folder), options, providers=providers)

    def __call__(self, x):
        self.check_input(x)
        arr = np.ascontiguousarray(x.detach().to('cpu', torch.float32).numpy())
        return torch.from_numpy(self.session.run(None, {'lr': arr})[0])
