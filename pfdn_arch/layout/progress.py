"""How far a training run is, from its first seconds: a line with the measured iterations per second and an ETA
(BasicSR's logger says nothing until its first ``print_freq``: 100 iterations, minutes on a CPU), and the same in
``experiments/<name>/progress.json`` for ``basicsr schedule`` to read while the stage runs.

The rate is measured over the last ``WINDOW_S`` seconds, not fixed or taken from the start: on a machine that
another job keeps busy the ETA follows what the run gets now.
"""
import json
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..files.atomic import read_json, write_text

FIRST_S = 15.0  # the first line, this long after the first iteration ended (its warm-up is not in the rate)
EVERY_S = 30.0  # then one every this long while BasicSR's own lines are further apart
WINDOW_S = 60.0  # the rate is measured over this much of the recent past
PROGRESS = 'progress.json'


def duration(seconds: float) -> str:
    """``4m05s``, ``2h07m``, ``21d04h``."""
    seconds = int(max(0, seconds))
    if seconds >= 86400:
        return f'{seconds // 86400}d{seconds % 86400 // 3600:02d}h'
    if seconds >= 3600:
        return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'
    return f'{seconds // 60}m{seconds % 60:02d}s'


def speed(per_second: float) -> str:
    """``3.21 it/s``, or ``4.2 s/it`` below one iteration a second."""
    return f'{per_second:.2f} it/s' if per_second >= 1 else f'{1 / per_second:.1f} s/it'


class Progress:
    """Told of every iteration (``step``); says a line through ``say`` ``FIRST_S`` after the first, then every
    ``EVERY_S`` unless BasicSR's own line (every ``print_freq`` iterations) came since, and records each in
    ``record`` (a progress.json path, or None)."""

    def __init__(self, total: int, print_freq: int, say: Callable[[str], None], record: Optional[str] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.print_freq, self.say, self.record, self.clock = total, max(1, print_freq), say, record, clock
        self.marks: List[Tuple[float, int]] = []
        self.last_said: Optional[float] = None
        self.lines = 0  # lines said so far

    def rate(self) -> Optional[float]:
        """Iterations per second over the recent window, or None before two iterations ended."""
        if len(self.marks) < 2 or self.marks[-1][0] <= self.marks[0][0]:
            return None
        (t0, i0), (t1, i1) = self.marks[0], self.marks[-1]
        return (i1 - i0) / (t1 - t0)

    def step(self, iteration: int) -> None:
        now = self.clock()
        self.marks.append((now, iteration))
        while len(self.marks) > 2 and now - self.marks[1][0] >= WINDOW_S:
            self.marks.pop(0)
        if self.last_said is None:
            self.last_said = now  # the first iteration (the warm-up) ended: the clock starts here
            return
        if self.lines and iteration % self.print_freq == 0:  # BasicSR's logger speaks at this iteration
            self.last_said = now
            return
        if now - self.last_said >= (EVERY_S if self.lines else FIRST_S):
            self._tell(iteration, now)

    def eta(self, iteration: int) -> Optional[float]:
        """Seconds left at the measured rate, or None before there is one."""
        rate = self.rate()
        return None if rate is None or rate <= 0 else (self.total - iteration) / rate

    def _tell(self, iteration: int, now: float) -> None:
        rate, left = self.rate(), self.eta(iteration)
        if rate is None or left is None:
            return
        self.say(f'iter {iteration}/{self.total}: {speed(rate)} (the last {duration(now - self.marks[0][0])}), ETA '
                 f'{duration(left)}')
        self.last_said = now
        self.lines += 1
        if self.record:
            write_text(self.record, json.dumps({'iter': iteration, 'total': self.total, 'per_second': rate,
                                                'eta_s': left, 'time': time.time()}))


def read_progress(path: str) -> Optional[Dict[str, Any]]:
    """A progress.json's content, or None where there is none or it is not one (a record: never trusted blindly)."""
    data = read_json(path)
    ok = isinstance(data, dict) and all(isinstance(data.get(k), (int, float)) for k in ('iter', 'total',
                                                                                      'per_second', 'time'))
    return data if ok else None


def remove_progress(path: str) -> None:
    """An earlier run's record, gone before a run starts (its figures are not this run's)."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
