"""The ``onnxruntime`` backend: ONNX Runtime on the ONNX export (CPU; CUDA with its CUDA provider)."""
from typing import Any, List
import numpy as np

from ... import errors
from ...archs.pfdn.limits import MIN_INPUT_SIZE
from .base import Runner, like_input, numpy_input
from .costs import COSTS
from .export_cache import CachedGraph, built_from_export


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime on the ONNX export (all graph optimizations, ``threads`` intra-op threads). The weights are
    constants of the session: ``refresh`` rebuilds it."""
    name = 'onnxruntime'
    costs = COSTS[name]
    runs_export = True

    @classmethod
    def installed(cls) -> bool:
        return errors.installed('onnxruntime') and errors.installed('onnx')

    @classmethod
    def runs_on(cls, device: Any) -> bool:
        ort = errors.require('onnxruntime', 'the onnxruntime backend', 'fast')
        return device.type == 'cpu' or 'CUDAExecutionProvider' in ort.get_available_providers()

    def __init__(self, net: Any, device: Any, dtype: str, threads: int):
        super().__init__(net, device, dtype, threads)
        self.refresh(net)

    def refresh(self, net: Any) -> None:
        ort = errors.require('onnxruntime', 'the onnxruntime backend', 'fast')
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers: List[Any] = ['CPUExecutionProvider']
        if self.device.type == 'cuda':
            providers.insert(0, ('CUDAExecutionProvider', {'device_id': self.device.index or 0}))
        # the first build starts from the cached export; new weights (training's validation) export afresh
        self.session = built_from_export(net, lambda path: ort.InferenceSession(path, options, providers=providers),
                                         cache=self.builds == 0)
        # the graph's own scale and channels, measured; a recalled graph's record must say the same
        channels = self.session.get_inputs()[0].shape[1]
        channels = channels if isinstance(channels, int) else (self.num_in_ch or 3)
        probe = np.zeros((1, channels, MIN_INPUT_SIZE, MIN_INPUT_SIZE), np.float32)
        upscale = self.session.run(None, {'lr': probe})[0].shape[-1] // MIN_INPUT_SIZE
        if isinstance(net, CachedGraph):
            net.agrees(upscale, channels)
        self.upscale, self.num_in_ch = upscale, channels
        self.builds += 1

    def __call__(self, x: Any) -> Any:
        self.check_input(x)
        return like_input(self.session.run(None, {'lr': numpy_input(x)})[0], x)
