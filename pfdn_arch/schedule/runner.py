"""The chain of training stages, run in order: each stage is ``basicsr train -opt <stage> --auto_resume`` in a
process of its own (BasicSR's logger and random state are per process), finished stages are skipped, an
interrupted one resumes. The schedule learns everything from the stage's exit status and files: a stage is finished
when its ``net_g_latest.pth`` loads; its progress is its saved training states and its validation history; a stage
that refused its input exits with status 2 after one ``error:`` line, which the schedule reads from the stage's
console log (``experiments/<prefix>schedule_logs/<stage>.log``).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Callable, List, Optional, Sequence, Tuple

from .. import stopping
from ..errors import PFDNError
from ..layout.experiment import Experiment
from ..layout.progress import PROGRESS, duration, read_progress, speed
from .stages import stage_work

POLL_SECONDS = 2.0


class StageFailed(PFDNError):
    """A stage stopped on an error (``reason``: the stage's own error), or crashed (``log``: its console log)."""

    def __init__(self, reason: str, path: Optional[str] = None, log: Optional[str] = None):
        super().__init__(reason, path)
        self.log = log


class Schedule:
    """Stages ``[(yml path, options)]`` and where the schedule keeps its own files (``logs``)."""

    def __init__(self, stages: List[Tuple[str, dict]], logs: str, say: Callable[[str], None] = print):
        self.stages, self.logs, self.say = stages, logs, say
        self.rates = Rates()  # what the stages run so far measured
        self.later: List[Tuple[dict, int]] = []  # the stages after the running one, and their iterations

    def run(self, overrides: Sequence[str] = (), verbose: bool = False) -> None:
        os.makedirs(self.logs, exist_ok=True)
        start, n = time.time(), len(self.stages)
        rates = self.rates = Rates()
        for i, (path, opt) in enumerate(self.stages):
            exp, total = Experiment(opt['name']), opt['train']['total_iter']
            head = f'[stage {i + 1}/{n}] {exp.name}'
            if exp.finished():
                self.say(f'{head}: finished earlier, skipped')
                continue
            done = exp.progress()
            left = rates.seconds_left([(o, o['train']['total_iter'] - (done if j == i else 0))
                                       for j, (_, o) in enumerate(self.stages) if j >= i])
            eta = f'ETA {duration(left)}' if left is not None else 'ETA once this stage has run a while'
            lr = opt['datasets']['train']['gt_size'] // opt.get('scale', 4)
            form = 'deployed form' if opt['network_g'].get('deploy') else 'training form'
            what = f'resuming at iter {done}/{total}' if done else f'{total} iters'
            self.say(f'{head}: {what}, LR patch {lr}, {form} | schedule {duration(time.time() - start)} elapsed, {eta}')
            t0 = time.time()
            self.later = [(o, o['train']['total_iter']) for _, o in self.stages[i + 1:]
                          if not Experiment(o['name']).finished()]
            marks = self.run_stage(path, exp, total, overrides, verbose, opt)
            rates.add(opt, total - done, time.time() - t0, marks)
            self.say(f'{head}: done in {duration(time.time() - t0)}')
        self.say(f'schedule: all {n} stages finished ({duration(time.time() - start)} in this run)')

    def run_stage(self, path: str, exp: Experiment, total: int, overrides: Sequence[str], verbose: bool,
                  opt: dict) -> list:
        log = os.path.join(self.logs, exp.name + '.log')
        cmd = [sys.executable, '-m', 'pfdn_arch.cli', 'train', '-opt', path, '--auto_resume']
        cmd += ['--force_yml', *overrides] if overrides else []
        with open(log, 'a') as console:
            start = console.tell()  # this run's part of the log: an earlier run's error is not this one's
            output = None if verbose else console
            proc = subprocess.Popen(cmd, stdout=output, stderr=output,
                                    preexec_fn=_die_with_parent if sys.platform.startswith('linux') else None)
            try:
                marks = self._follow(proc, exp, total, opt)
            except BaseException:  # Ctrl-C, SIGTERM (raised as KeyboardInterrupt by the CLI): stop the stage too
                stop(proc)
                raise
        self._outcome(proc.returncode, exp, log, start, verbose)
        return marks

    def _follow(self, proc, exp, total, opt):
        """Progress lines from the stage's files while it runs: its rate and ETA (its progress.json, from its first
        seconds), its validations and its saved states, each said once (BasicSR validates the last iteration twice
        when it is also a validation step). Returns the (time, iteration) of each progress seen, for the measured
        rate."""
        said = {(e['iter'], e['dataset']) for e in exp.history()}
        seen_state, marks = exp.progress(), []
        record, seen_record = os.path.join(exp.folder, PROGRESS), time.time()
        running = True
        while running:
            stopping.check()  # a Ctrl-C whose first raise was lost still stops the schedule (and its stage)
            try:
                proc.wait(POLL_SECONDS)
                running = False  # one last look at its files
            except subprocess.TimeoutExpired:
                pass
            for entry in exp.history():
                if (entry['iter'], entry['dataset']) in said:
                    continue
                said.add((entry['iter'], entry['dataset']))
                values = ', '.join(f'{k} {v:.4f}' if k == 'ssim' else f'{k} {v:.2f}' for k, v in entry.items()
                                   if k not in ('iter', 'dataset'))
                self.say(f"    iter {entry['iter']}/{total}: {entry['dataset']} {values}")
                marks.append((time.time(), entry['iter']))
            now = read_progress(record)
            if now is not None and now['time'] > seen_record:
                seen_record = now['time']
                self.say(f"    iter {now['iter']}/{total}: {self._rate_and_eta(opt, now)}")
                marks.append((now['time'], now['iter']))
            saved = exp.progress()
            if saved > seen_state:
                self.say(f'    iter {saved}/{total}: training state saved')
                seen_state = saved
                marks.append((time.time(), saved))
        return marks

    def _rate_and_eta(self, opt: dict, now: dict) -> str:
        """The stage's measured rate, and the ETAs of the stage and of the schedule at the rate it gets now."""
        rate = now['per_second']
        stage_left = (now['total'] - now['iter']) / rate
        per_work = 1 / (rate * stage_work(opt) / opt['train']['total_iter'])  # seconds per unit of work, now
        later = self.rates.seconds_left(self.later, per_work)
        return f'{speed(rate)}, stage ETA {duration(stage_left)}, schedule ETA {duration(stage_left + (later or 0))}'

    def _outcome(self, code, exp, log, start, verbose):
        """The stage's exit status, and for a refused input (status 2) its one ``error:`` line from its log."""
        if code == 0:
            return
        if code in (130, -signal.SIGINT, -signal.SIGTERM):
            raise KeyboardInterrupt
        if code == 2:  # the stage refused its input: its own error, once; a rerun would not help
            error = None if verbose else _last_error(log, start)
            raise StageFailed(f'stage {exp.name}: ' + (error or 'its input was refused (its error line is above)'))
        raise StageFailed(f'stage {exp.name} failed (exit {code}); its console log is {log}; fix the cause and rerun '
                          'the same command to resume it', log=log)


def _last_error(log, start):
    """The last ``error: ...`` line the stage wrote into its console log after ``start``, without its prefix."""
    try:
        with open(log, errors='replace') as f:
            f.seek(start)
            lines = [line.strip() for line in f if line.startswith('error: ')]
    except OSError:
        return None
    return lines[-1][len('error: '):] if lines else None


class Rates:
    """What the stages run so far measured, for an ETA of the rest: seconds per unit of work (iterations x LR pixels
    a batch, ``stage_work``) while training, from the stage's own progress (its saved states and validations seen
    at their times), and the seconds each stage costs besides (start-up, the last save and validation, the deployed
    copy): with stages of 30 iterations, those are most of a stage."""

    def __init__(self):
        self.per_work, self.fixed = [], []

    def add(self, opt: dict, iters: int, seconds: float, marks: list) -> None:
        per_iter = stage_work(opt) / opt['train']['total_iter']
        points = sorted(set(marks))
        if iters <= 0:
            return
        if len(points) >= 2 and points[-1][1] > points[0][1]:
            rate = (points[-1][0] - points[0][0]) / (points[-1][1] - points[0][1])  # seconds per iteration
            self.per_work.append(rate / per_iter)
            self.fixed.append(max(0.0, seconds - rate * iters))
        else:  # too short to see a rate: the whole stage as work, nothing apart
            self.per_work.append(seconds / (iters * per_iter))
            self.fixed.append(0.0)

    def seconds_left(self, stages: List[Tuple[dict, int]], per_work_now: Optional[float] = None) -> Optional[float]:
        """Seconds for [(options, iterations left)], or None before anything was measured; ``per_work_now``: the
        running stage's rate (seconds per unit of work), which says what this machine gives now (another job may
        have started since the earlier stages ran)."""
        if not self.per_work and per_work_now is None:
            return None
        per_work = per_work_now if per_work_now is not None else sum(self.per_work) / len(self.per_work)
        fixed = sum(self.fixed) / len(self.fixed) if self.fixed else 0.0
        return sum(fixed + iters * stage_work(opt) / opt['train']['total_iter'] * per_work
                   for opt, iters in stages if iters > 0)


def _die_with_parent():
    """In the stage's process: receive SIGTERM when the schedule process dies, however it dies (Linux), so a
    stage never trains on with nobody waiting for it."""
    try:
        import ctypes
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop(proc: subprocess.Popen, grace: float = 60) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
