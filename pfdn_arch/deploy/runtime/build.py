"""The one way to build a runner: from a network, a checkpoint file or a model file, for ``basicsr infer``, the
benches and the apps' glue alike.

- a network (deployed form): ``choose.make_runner``;
- a model file made elsewhere (``.xml``, ``.onnx``, ``.param``): ``model_file.file_runner``;
- a checkpoint: the chooser decides first; where it picks a runtime that runs the export and the export cache knows
  the file (``export_cache.recall``), the runner is built from the cached graph, without loading the checkpoint or
  importing torch. Otherwise the network is loaded and built, and the file remembered for the next run
  (``export_cache.remember``). ``import torch`` is most of the time that saves (docs/benchmarks.md, "Figures behind
  the code's choices").

Which route ran is ``runner.route``. Notes (a fallback, a precision not honoured, a QAT checkpoint's float weights)
go through ``warn``, once.
"""
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from .base import Runner
from .choose import Choice, RUNNERS, build, make_runner, resolve
from .costs import Workload
from .export_cache import CachedGraphUnusable, recall, remember
from .model_file import MODEL_FILES, file_runner

if TYPE_CHECKING:  # torch is imported only where a route needs it
    from torch import nn

TINY_PIXELS = 32 * 32  # LR images up to this size run on one thread


def is_model_file(path: str) -> bool:
    return str(path).lower().endswith(MODEL_FILES)


def build_runner(weights: Union[str, 'nn.Module'], backend: str = 'auto', device: Any = 'cpu',
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
    choice = None
    if graph is not None and graph.num_in_ch == 3:  # a PFDN's, run before: the chooser decides without the network
        choice = resolve(backend, device, dtype, warn, workload)
        if RUNNERS[choice.backend].runs_export:
            try:
                runner = build(graph, choice, threads, streams)
            except CachedGraphUnusable:  # removed from the cache: the checkpoint's route exports it afresh
                pass
            else:
                runner.route = 'export cache'
                _say_if_qat(graph.qat, weights, warn)
                return runner
    return _from_checkpoint(weights, backend, device, dtype, workload, streams, threads, warn, tiny, choice)


def _from_checkpoint(weights: str, backend: str, device: Any, dtype: str, workload: Optional[Workload],
                     streams: int, threads: Optional[int], warn: Callable[[str], None], tiny: bool,
                     choice: Optional[Choice]) -> Runner:
    import torch

    from ...errors import CheckpointError
    from ...files.checkpoints import build_from_checkpoint, qat_state

    net, _ = build_from_checkpoint(weights)
    if net.num_in_ch != 3:
        raise CheckpointError(f'this network takes {net.num_in_ch}-channel input; the runners run RGB networks',
                              weights)
    if not net.deploy:
        net.reparameterize()
    if tiny:
        torch.set_num_threads(1)
    if choice is None:
        runner = make_runner(net, backend, device, dtype, warn=warn, workload=workload, streams=streams,
                             threads=threads)
    else:  # chosen already (and said) for the cached graph
        runner = build(net, choice, threads, streams)
    runner.route = 'checkpoint'
    qat = qat_state(weights) is not None
    if runner.runs_export:  # built from the export, which the cache now holds
        remember(weights, net, qat)
    _say_if_qat(qat, weights, warn)
    return runner


def _say_if_qat(qat: bool, weights: str, warn: Callable[[str], None]) -> None:
    if qat:
        warn(f'note: {weights} is a checkpoint of quantization-aware fine-tuning; this runs its float weights. '
             f'For its int8: basicsr export --formats int8 --weights {weights}, then --weights '
             '<out>/pfdn_x4_int8.xml')
