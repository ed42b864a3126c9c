"""The ``onnxruntime`` backend: ONNX Runtime on the ONNX export (CPU; CUDA with its CUDA provider)."""
from ... import errors
from .base import Runner, like_input, numpy_input
from .costs import COSTS, REBUILT_ON_REFRESH
from .export_cache import built_from_export


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime on the ONNX export (all graph optimizations, ``threads`` intra-op threads). The weights are
    constants of the session: ``refresh`` rebuilds it."""
    name = 'onnxruntime'
    costs = COSTS[name]
    rebuilt_on_refresh = name in REBUILT_ON_REFRESH

    @classmethod
    def installed(cls) -> bool:
        return errors.installed('onnxruntime') and errors.installed('onnx')

    @classmethod
    def runs_on(cls, device) -> bool:
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
        # the first build starts from the cached export; new weights (training's validation) export afresh
        self.session = built_from_export(net, lambda path: ort.InferenceSession(path, options, providers=providers),
                                         cache=self.builds == 0)
        self.builds += 1

    def __call__(self, x):
        self.check_input(x)
        return like_input(self.session.run(None, {'lr': numpy_input(x)})[0], x)
