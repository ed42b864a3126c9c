"""The one way to build a runner: from a network, a checkpoint file or a model file, for ``basicsr infer``, the
benches and the apps' glue alike.

- a network (deployed form): ``choose.make_runner``;
- a model file made elsewhere (``.xml``, ``.onnx``, ``.param``): ``model_file.file_runner``;
- a checkpoint: without importing torch where the export cache knows the file and OpenVINO is what would run
  (``quick_start``), else from the network it loads, the file then remembered for the next run
  (``export_cache.remember``).

Which route ran is ``runner.route``. Notes (a fallback, a precision not honoured, a QAT checkpoint's float weights)
go through ``warn``.
"""
from typing import TYPE_CHECKING, Callable, Optional, Union

from .base import Runner, default_threads
from .costs import Workload
from .export_cache import recall, remember
from .model_file import MODEL_FILES, file_runner
from .quick_start import quick_runner

if TYPE_CHECKING:  # torch is imported only where a route needs it (the quick route runs without it)
    from torch import nn

TINY_PIXELS = 32 * 32  # LR images up to this size run on one thread


def is_model_file(path: str) -> bool:
    return str(path).lower().endswith(MODEL_FILES)


def build_runner(weights: Union[str, 'nn.Module'], backend: str = 'auto', device: str = 'cpu',
                 dtype: str = 'fp32', *, workload: Optional[Workload] = None, streams: int = 1,
                 threads: Optional[int] = None, warn: Callable[[str], None] = print,
                 tiny_on_one_thread: bool = True) -> Runner:
    """A runner of ``weights`` (a deployed network, a checkpoint path or a model file path) on ``backend``,
    ``device`` and ``dtype`` (fp32: exact; auto: the fastest that keeps the picture, by ``workload`` when given).
    ``streams``: images the caller will run at once.
    ``tiny_on_one_thread``: when every image of ``workload`` is tiny, one thread (a 16x16 forward split over two
    threads waits on the other's slice: on a machine whose cores are shared that costs many times the forward;
    docs/benchmarks.md, "Tiny images")."""
    if not isinstance(weights, str):
        from .choose import make_runner
        runner = make_runner(weights, backend, device, dtype, warn=warn, threads=threads, workload=workload,
                             streams=streams)
        runner.route = 'network'
        return runner
    if is_model_file(weights):
        from ...files.paths import input_file
        runner = file_runner(input_file(weights), backend, device, threads=threads, warn=warn, dtype=dtype)
        runner.route = 'model file'
        return runner
    tiny = tiny_on_one_thread and workload is not None and bool(workload.sizes) and \
        max(h * w for h, w in workload.sizes) <= TINY_PIXELS
    threads = 1 if tiny else threads
    graph = recall(weights)
    quick = None if graph is None else quick_runner(graph, backend, device, dtype, workload, streams, threads)
    if quick is not None and graph is not None:
        runner, qat = quick, graph.qat
        runner.route = 'export cache'
    else:
        runner, qat = _from_checkpoint(weights, backend, device, dtype, workload, streams, threads, warn, tiny)
    if qat:
        warn(f'note: {weights} is a checkpoint of quantization-aware fine-tuning; this runs its float weights. '
             f'For its int8: basicsr export --int8 --weights {weights}, then --weights <out>/pfdn_x4_int8.xml')
    return runner


def _from_checkpoint(weights, backend, device, dtype, workload, streams, threads, warn, tiny):
    import torch

    from ...errors import CheckpointError
    from ...files.checkpoints import build_from_checkpoint, qat_state
    from .choose import make_runner

    net, _ = build_from_checkpoint(weights)
    qat = qat_state(weights) is not None
    if net.num_in_ch != 3:
        raise CheckpointError(f'this network takes {net.num_in_ch}-channel input; the runners run RGB networks',
                              weights)
    if not net.deploy:
        net.reparameterize()
    if tiny:
        torch.set_num_threads(1)
    runner = make_runner(net, backend, device, dtype, warn=warn, workload=workload, streams=streams,
                         threads=threads or default_threads())
    runner.route = 'checkpoint'
    if runner.name in ('openvino', 'onnxruntime'):  # built from the export, which the cache now holds
        remember(weights, net, qat)
    return runner, qat
