"""A runner built without importing torch: ``basicsr infer`` of a checkpoint run before, on the CPU with OpenVINO.

``import torch`` is a fifth of an ``infer`` of Urban100's LR folder on a 2-core CPU (docs/benchmarks.md, "Figures
behind the code's choices"). What
OpenVINO needs of them is in the export cache after the first run: the checkpoint file's graph and its scale,
channels and smallest input (``export_cache.recall``). This builds from that where nothing torch would say can
change the choice: the CPU, backend auto or openvino, and ``auto``'s pick (``costs.pick``) the same OpenVINO pair
whether torch runs bf16 natively here or not (its one fact this cannot ask without importing it). Anything else
returns None and the usual route (``choose.make_runner``) runs, with its notes; so does a cached graph OpenVINO
cannot build (it is removed).
"""
from typing import Optional

from .base import CPU, cached_precisions, default_threads
from .costs import AUTO_ORDER, Workload, pick
from .export_cache import CachedGraph, CachedGraphUnusable
from .onnxruntime_runner import OnnxRuntimeRunner
from .openvino_runner import OpenVINORunner

# torch's native precisions on a CPU, as choose.py would find them: fp32, and bf16 where oneDNN runs it
TORCH_CPU_PRECISIONS = (('fp32',), ('fp32', 'bf16'))


def quick_dtype(backend: str, device: str, dtype: str, workload: Optional[Workload]) -> Optional[str]:
    """The precision OpenVINO runs in where the usual route would choose OpenVINO on the CPU without a note, for
    whatever torch's precisions are; None otherwise."""
    if device != 'cpu' or backend not in ('auto', 'openvino') or dtype not in ('auto', 'fp32', 'bf16'):
        return None
    if not OpenVINORunner.installed():
        return None
    known = {'openvino': cached_precisions(OpenVINORunner, CPU)}
    if backend == 'auto' and OnnxRuntimeRunner.installed():
        known['onnxruntime'] = cached_precisions(OnnxRuntimeRunner, CPU)
    choices = set()
    for torch_precisions in TORCH_CPU_PRECISIONS if backend == 'auto' else ((),):
        precisions = dict(known, torch=torch_precisions)
        candidates = [b for b in AUTO_ORDER['cpu'] if b in precisions and (backend == 'auto' or b == backend)]
        choices.add(pick(candidates, precisions, dtype, 'cpu', workload))
    if len(choices) != 1:
        return None
    chosen, precision = choices.pop()
    return precision if chosen == 'openvino' and precision in known['openvino'] else None


def quick_runner(graph: CachedGraph, backend: str, device: str, dtype: str, workload: Optional[Workload] = None,
                 streams: int = 1, threads: Optional[int] = None) -> Optional[OpenVINORunner]:
    """An OpenVINO runner of ``graph`` (``export_cache.recall``) where the usual route would build the same one
    (``quick_dtype``), else None."""
    precision = quick_dtype(backend, device, dtype, workload)
    if precision is None or graph.num_in_ch != 3:
        return None
    try:
        return OpenVINORunner(graph, CPU, precision, threads or default_threads(), streams)
    except CachedGraphUnusable:
        return None
