"""The ``openvino`` backend: OpenVINO on the ONNX export (CPU), one compiled model with dynamic height and width."""
import queue
from typing import Any, Callable, Tuple

import numpy as np

from ... import errors
from ...archs.pfdn.limits import MIN_INPUT_SIZE
from .base import Runner, T, like_input, numpy_input
from .costs import COSTS
from .export_cache import CachedGraph, built_from_export


class OpenVINORunner(Runner):
    """OpenVINO on the ONNX export: one compiled model with dynamic height and width for every input size (as fast
    as a statically shaped one at a fixed size, and no compilation per new size). One image at a time: the latency
    hint, ``threads`` inference threads pinned to cores. With ``streams`` > 1 (a folder of images): the throughput
    hint, ``streams`` single-threaded streams run by the caller's threads, so that the caller's own work (decoding,
    encoding) does not stall a parallel region that waits for all its threads. The weights are constants of the
    compiled model: ``refresh`` rebuilds it."""
    name = 'openvino'
    costs = COSTS[name]
    runs_export = True

    @classmethod
    def installed(cls) -> bool:
        return errors.installed('openvino')

    @classmethod
    def runs_on(cls, device: Any) -> bool:
        return device.type == 'cpu'

    @classmethod
    def precisions(cls, device: Any) -> Tuple[str, ...]:
        ov = errors.require('openvino', 'the openvino backend', 'fast')
        return ('fp32', 'bf16') if 'BF16' in ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES') else ('fp32',)

    def __init__(self, net: Any, device: Any, dtype: str, threads: int, streams: int = 1):
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

    def refresh(self, net: Any) -> None:
        ov = errors.require('openvino', 'the openvino backend', 'fast')
        core = ov.Core()
        # the first build starts from the cached export; new weights (training's validation) export afresh
        compiled = built_from_export(net, lambda path: core.compile_model(core.read_model(path), 'CPU', self.config),
                                     cache=self.builds == 0)
        self.requests: queue.Queue = queue.Queue()  # one per stream, taken by the calling thread for its forward
        channels = compiled.input(0).get_partial_shape()[1]
        channels = channels.get_length() if channels.is_static else (self.num_in_ch or 3)
        for _ in range(self.streams):
            request = compiled.create_infer_request()
            # one forward here, on this thread, before the caller's threads share the requests: OpenVINO's Python
            # binding (2026.4) initializes a static on the first ``tensor.data`` of a process while holding the GIL,
            # and two threads getting there at once deadlock (seen: ``basicsr infer`` of a folder hung for good
            # in about one run in ten, both workers in ``update_inputs``)
            request.infer({0: np.zeros((1, channels, MIN_INPUT_SIZE, MIN_INPUT_SIZE), np.float32)})
            self.requests.put(request)
        # the graph's own scale and channels, measured; a recalled graph's record must say the same
        upscale = request.get_output_tensor(0).shape[-1] // MIN_INPUT_SIZE
        if isinstance(net, CachedGraph):
            net.agrees(upscale, channels)
        self.upscale, self.num_in_ch = upscale, channels
        self.builds += 1

    def __call__(self, x: Any) -> Any:
        return like_input(self.with_output(x, np.copy), x)

    def with_output(self, x: Any, use: Callable[[Any], T]) -> T:
        """``use`` gets the request's own output memory (a view), before the request serves another call."""
        self.check_input(x)
        arr = numpy_input(x)
        request = self.requests.get()
        try:
            infer_in_place(request, arr)
            return use(request.get_output_tensor(0).data)
        finally:
            self.requests.put(request)


def infer_in_place(request: Any, arr: np.ndarray) -> None:
    """One forward of ``request`` on ``arr`` (contiguous float32), read by the runtime where it is; the result stays
    in the request's output tensor. ``infer`` by default copies the input in and every output out into the dict it
    returns (unused here), and on a CPU the network's cores pay for those copies (docs/benchmarks.md, "Figures behind the code's choices")."""
    request.infer({0: arr}, share_inputs=True, share_outputs=True)
