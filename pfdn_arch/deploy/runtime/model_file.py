"""Model files made elsewhere (an int8 OpenVINO IR or QDQ ONNX from ``basicsr export --int8``, any ONNX export, or
the NCNN files of ``basicsr export --ncnn``) run as a runner: on OpenVINO (.xml or .onnx) or ONNX Runtime (.onnx) on
the CPU, or NCNN (.param) on the CPU or a Vulkan device."""
import os
from typing import Any, Callable, List, Optional, Type

import numpy as np

from ...errors import CheckpointError, OptionsError, require
from .base import CPU, INSTALL, ModelFile, Runner, default_threads, like_input, numpy_input, parse_device
from .ncnn_runner import NcnnRunner, vulkan_index
from .onnxruntime_runner import OnnxRuntimeRunner
from .openvino_runner import OpenVINORunner, infer_in_place

MODEL_FILES = ('.xml', '.onnx', '.param')


class FileRunner(ModelFile):
    """A model file on ``backend`` ('openvino' or 'onnxruntime'). Its scale is read off its output for a small
    input; its inputs are checked as the architecture's (the files hold PFDN graphs)."""

    def __init__(self, path: str, backend: str, threads: int):
        self.name, self.path = backend, path
        self.device, self.dtype, self.threads, self.builds, self.streams = CPU, 'int8', threads, 1, 1
        self.num_in_ch = 3
        if backend == 'openvino':
            ov = require('openvino', 'running an OpenVINO model file', 'fast')

            # as OpenVINORunner's latency mode; f32 for what stays in float (this CPU's default may be bf16)
            compiled = ov.Core().compile_model(path, 'CPU', {'PERFORMANCE_HINT': 'LATENCY',
                                                             'INFERENCE_NUM_THREADS': threads,
                                                             'ENABLE_CPU_PINNING': True,
                                                             'INFERENCE_PRECISION_HINT': 'f32'})
            request = compiled.create_infer_request()

            def run(arr):
                infer_in_place(request, arr)
                return request.get_output_tensor(0).data.copy()
        else:
            ort = require('onnxruntime', 'running an ONNX model file', 'fast')
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
            name = session.get_inputs()[0].name

            def run(arr):
                return session.run(None, {name: arr})[0]
        self._run = run
        probe = np.zeros((1, 3, 16, 16), np.float32)
        self.upscale = self._run(probe).shape[-1] // 16

    def __call__(self, x):
        self.check_input(x)
        return like_input(self._run(numpy_input(x)), x)


def file_runner(path: str, backend: str = 'auto', device: Any = 'cpu', threads: Optional[int] = None,
                warn: Callable[[str], None] = print, dtype: str = 'auto') -> Runner:
    """A runner for a model file (``MODEL_FILES``): an OpenVINO IR runs on OpenVINO; an ONNX file on ONNX Runtime
    (auto) or OpenVINO; an NCNN .param on NCNN, on the CPU or ``device`` vulkan[:N], in ``dtype`` where NCNN has it.
    A backend or precision that cannot run it falls back with one note."""
    threads = threads or default_threads()
    if path.lower().endswith('.param'):
        if backend not in ('auto', 'ncnn'):
            warn(f'note: {os.path.basename(path)} is an NCNN model; it runs on ncnn, not {backend}')
        runner = NcnnRunner(path, threads, vulkan_index(device), dtype)
        if runner.dtype_note:
            warn(runner.dtype_note)
        return runner
    if device != 'cpu' and parse_device(device).type != 'cpu':
        warn(f'note: {os.path.basename(path)} runs on the CPU here (its runtimes), not on {device}')
    ext = os.path.splitext(path)[1].lower()
    choices: List[Type[Runner]] = [OpenVINORunner] if ext == '.xml' else [OnnxRuntimeRunner, OpenVINORunner]
    usable = [r.name for r in choices if r.installed()]
    if not usable:
        raise OptionsError(f"running {os.path.basename(path)} needs {' or '.join(r.name for r in choices)}: "
                           f'{INSTALL}', 'backend')
    if backend not in usable:
        if backend != 'auto':
            warn(f'note: the {backend} backend cannot run {os.path.basename(path)}; using {usable[0]}')
        backend = usable[0]
    try:
        return FileRunner(path, backend, threads)
    except Exception as err:  # the runtimes raise their own types for a file that is not a model
        kind = 'an OpenVINO IR' if ext == '.xml' else 'an ONNX model'
        raise CheckpointError(f'cannot be loaded as {kind} by {backend} ({str(err).splitlines()[0][:160]}); give a '
                              f'model file basicsr export wrote, or a .pth checkpoint', path) from None
