"""``auto``'s cost model, without torch: what each backend costs in each precision (``COSTS``), the precisions that
keep the picture (``AUTO_DTYPES``), the work at hand (``Workload``) and the choice among backend x precision pairs
(``pick``). ``choose`` decides with it for every run, before torch is imported where it can.
"""
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

# {backend: {device type: {precision: (seconds to build: export and compile, seconds to compile each new input size,
# seconds per million LR pixels relative to torch fp32)}}}, as bench/bench_infer.py measures them; a precision
# without costs is not one --dtype auto picks. Where each figure comes from, and why compile's CPU bf16 has none:
# docs/benchmarks.md, "Figures behind the code's choices".
COSTS: Dict[str, Dict[str, Dict[str, Tuple[float, float, float]]]] = {
    'torch': {'cpu': {'fp32': (0.0, 0.0, 1.0), 'bf16': (0.0, 0.0, 0.6)},
              'cuda': {'fp32': (0.0, 0.0, 1.0), 'fp16': (0.0, 0.0, 0.55), 'bf16': (0.0, 0.0, 0.6)}},
    'compile': {'cpu': {'fp32': (5.0, 30.0, 0.62)},
                'cuda': {'fp32': (1.0, 10.0, 0.4), 'fp16': (1.0, 10.0, 0.25), 'bf16': (1.0, 10.0, 0.3)}},
    'openvino': {'cpu': {'fp32': (0.6, 0.0, 0.55), 'bf16': (0.7, 0.0, 0.3)}},
    'onnxruntime': {'cpu': {'fp32': (0.55, 0.0, 0.57)}},
}
# the runtimes that hold the weights as constants: new weights (validation during training) mean a new build
REBUILT_ON_REFRESH = frozenset({'openvino', 'onnxruntime'})
# What --dtype auto may pick, per device type, fastest first: the precisions that keep the picture, i.e. the released
# weights' Set5 (x4, PSNR on Y) within 0.01 dB of fp32, as measured (docs/benchmarks.md, "Figures behind the code's
# choices"). Where the hardware lacks one, it is not native there (the runners' ``precisions``), so auto runs fp32.
AUTO_DTYPES = {'cpu': ('bf16', 'fp32'), 'cuda': ('fp16', 'fp32')}
# fastest first, per device type (bench/bench_infer.py measures them); what auto and the fallbacks choose from
AUTO_ORDER = {'cpu': ('openvino', 'onnxruntime', 'torch'), 'cuda': ('compile', 'torch')}
# seconds per million LR pixels of the plain fp32 forward, which the backends' relative costs scale
TORCH_SECONDS_PER_MPX = {'cpu': 3.9, 'cuda': 0.02}


def costed(backend: str, device_type: str, dtype: str) -> bool:
    """Whether the cost model knows ``backend`` in ``dtype`` on ``device_type`` (what auto may pick)."""
    return dtype in COSTS[backend].get(device_type, {})


class Workload:
    """What a runner will be asked to do: ``sizes`` {(h, w): images} of LR inputs per pass, ``passes`` over them,
    and whether the weights change between passes (``refresh``: validation during training)."""

    def __init__(self, sizes: dict, passes: int = 1, refresh: bool = False):
        self.sizes, self.passes, self.refresh = dict(sizes), max(1, passes), refresh

    @classmethod
    def of(cls, shapes: Iterable[Tuple[int, int]], **kwargs) -> 'Workload':
        counts: Dict[tuple, int] = {}
        for hw in shapes:
            counts[tuple(hw)] = counts.get(tuple(hw), 0) + 1
        return cls(counts, **kwargs)

    def seconds(self, backend: str, device_type: str, dtype: str = 'fp32') -> float:
        """The cost model's estimate of the whole workload on ``backend`` in ``dtype``."""
        build, per_size, relative = COSTS[backend][device_type][dtype]
        mpx = sum(h * w * n for (h, w), n in self.sizes.items()) / 1e6
        builds = self.passes if (self.refresh and backend in REBUILT_ON_REFRESH) else 1
        return (build * builds + per_size * len(self.sizes)
                + relative * mpx * self.passes * TORCH_SECONDS_PER_MPX[device_type])

    def __repr__(self):
        return (f'{sum(self.sizes.values())} images of {len(self.sizes)} sizes x {self.passes} passes'
                + (', weights refreshed' if self.refresh else ''))


def cheapest(pairs: Sequence[Tuple[str, str]], device_type: str,
             workload: Optional[Workload] = None) -> Tuple[str, str]:
    """The (backend, precision) pair of ``pairs`` (all costed) that costs least for ``workload``; without one, the
    fastest per forward among those that compile no size (a backend that compiles per size is left out)."""
    if workload is not None:
        return min(pairs, key=lambda bp: workload.seconds(bp[0], device_type, bp[1]))
    quick = [bp for bp in pairs if COSTS[bp[0]][device_type][bp[1]][1] == 0] or list(pairs)
    return min(quick, key=lambda bp: COSTS[bp[0]][device_type][bp[1]][2])


def pick(candidates: Sequence[str], precisions: Mapping[str, Sequence[str]], dtype: str, device_type: str,
         workload: Optional[Workload] = None) -> Tuple[str, str]:
    """(backend, precision) that auto takes among ``candidates`` (usable here, fastest first), each running
    ``precisions[backend]`` natively. ``dtype`` auto: the cheapest pair of a candidate and a precision of
    ``AUTO_DTYPES`` it runs natively. Another ``dtype``: the cheapest candidate that runs it natively (else any), and
    ``dtype`` as asked (``choose.resolve`` falls back where the backend lacks it)."""
    if dtype == 'auto':
        pairs = [(b, p) for b in candidates for p in AUTO_DTYPES[device_type]
                 if p in precisions[b] and costed(b, device_type, p)] or [(candidates[0], 'fp32')]
        return cheapest(pairs, device_type, workload)
    native = [b for b in candidates if dtype in precisions[b]] or list(candidates)
    if workload is None or len(native) == 1:
        return native[0], dtype
    # with a workload, the cheapest for it (torch is always a candidate, so auto is never the slower choice)
    return min(native, key=lambda b: workload.seconds(b, device_type, dtype if costed(b, device_type, dtype)
                                                      else 'fp32')), dtype
