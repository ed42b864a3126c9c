"""BasicSR's stock ``train_pipeline`` and ``test_pipeline``, run with a checked ``RunOptions`` and the working
directory as root (so experiments and results go under it, never into site-packages); a test run's figures, as its
model recorded them, become ``results.md`` (``results``). The checked options reach BasicSR through its own
``parse_options``: they are written as the yml it reads (``RunOptions.resolved_yml``), handed to it on the command
line it parses, and BasicSR copies that yml into the experiment, which so records what really ran. Nothing of
BasicSR is replaced for the run.
"""
from __future__ import annotations

import glob
import os
import shutil
import sys
from contextlib import contextmanager, nullcontext
from typing import List, Optional

import basicsr.test
import basicsr.train

from ..checks.options import RunOptions
from ..files.locks import owned
from ..layout.experiment import HISTORY
from .results import write_table


def _archived(path):
    return set(glob.glob(glob.escape(path) + '_archived_*'))


@contextmanager
def _archiving_undone_on_failure(run, root):
    """BasicSR moves an existing experiment (and its TensorBoard log) or results folder aside as
    ``<name>_archived_<time>`` before a run without resume starts. The option checks catch what they can before
    that; for whatever still fails after it (a dataset that cannot be read, a network that cannot be built, Ctrl-C)
    before the run saved anything, the folders it made are removed and the archived ones put back, so a failing
    rerun leaves the user's trained experiment exactly as it was. A run that saved a model or training state keeps
    its folder. Found by looking at the folders before and after, not by replacing BasicSR's ``mkdir_and_rename``."""
    if run.is_train:
        paths = [os.path.join(root, 'experiments', run.name), os.path.join(root, 'tb_logger', run.name)]
    else:
        paths = [os.path.join(root, 'results', run.name)]
    before = {path: (os.path.exists(path), _archived(path)) for path in paths}
    try:
        yield
    except BaseException:
        saved = any(files for path in paths for sub in ('models', 'training_states')
                    for _, _, files in os.walk(os.path.join(path, sub)))
        if not saved:
            for path, (existed, archived) in before.items():
                moved = sorted(_archived(path) - archived)
                if moved and os.path.exists(path):
                    shutil.rmtree(path, ignore_errors=True)
                if moved:
                    os.rename(moved[-1], path)
                    print(f'note: the run stopped before it saved anything; {path} is back as it was',
                          file=sys.stderr)
                elif not existed and os.path.isdir(path) and path == paths[0]:
                    shutil.rmtree(path, ignore_errors=True)
        raise


def run_pipeline(run: RunOptions, root: Optional[str] = None) -> List[str]:
    """Train or test (``run.is_train``) with BasicSR's own pipeline. Returns the files of measurements the run
    holds (``validation.json``, and ``results.md`` for a test run), also when it stops early."""
    root = root or os.getcwd()
    for note in run.cpu_adjustments():
        print(f'note: {note}', file=sys.stderr)
    module = basicsr.train if run.is_train else basicsr.test
    pipeline = module.train_pipeline if run.is_train else module.test_pipeline
    rank = int(os.environ.get('RANK', '0'))  # under torchrun every rank runs this; the first one holds the folder
    folder = os.path.join(root, 'experiments' if run.is_train else 'results', run.name)
    holder = owned(os.path.dirname(folder), run.name) if rank == 0 else nullcontext()
    with holder, run.command_line(), _archiving_undone_on_failure(run, root):
        try:
            pipeline(root)
        finally:
            table = None if run.is_train or not os.path.isdir(folder) else write_table(run.opt, folder)
    return [p for p in (os.path.join(folder, HISTORY), table) if p and os.path.isfile(p)]
