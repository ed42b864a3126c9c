"""The ``onnxruntime`` backend: ONNX Runtime on the ONNX export (CPU; CUDA with its CUDA provider)."""
import tempfile

import torch

from ... import errors
from .base import Runner, numpy_input
from .onnx_graph import onnx_model_file


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime on the ONNX export (all graph optimizations, ``threads`` intra-op threads). The weights are
    constants of the session: ``refresh`` rebuilds it."""
    name = 'onnxruntime'
    costs = {'cpu': {'fp32': (0.55, 0.0, 0.57)}}
    rebuilt_on_refresh = True

    @classmethod
    def installed(cls) -> bool:
        return errors.installed('onnxruntime') and errors.installed('onnx')

    @classmethod
    def runs_on(cls, device: torch.device) -> bool:
        import onnxruntime as ort  # optional: imported where it is used
        return device.type == 'cpu' or 'CUDAExecutionProvider' in ort.get_available_providers()

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
        return torch.from_numpy(self.session.run(None, {'lr': numpy_input(x)})[0])
