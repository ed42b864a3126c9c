"""BasicSR's stock ``train_pipeline`` and ``test_pipeline``, run with a checked ``RunOptions`` and the working
directory as root (so experiments and results go under it, never into site-packages), with every model's
validations recorded (``results``). BasicSR's ``parse_options`` would read ``sys.argv``; for the length of the run
the pipeline's ``parse_options`` hands it the options already parsed instead.
"""
import glob
import os
import shutil
import sys
from contextlib import contextmanager, nullcontext

import basicsr.test
import basicsr.train
import basicsr.utils.misc as misc

from ..files.locks import owned
from .results import recording


@contextmanager
def _parsed(module, run, root):
    parse_options = module.parse_options
    opt, args = run.to_basicsr(root)
    module.parse_options = lambda root_path, is_train=True: (opt, args)
    try:
        yield opt
    finally:
        module.parse_options = parse_options


@contextmanager
def _archiving_undone_on_failure(module):
    """BasicSR moves an existing experiment (or results) folder aside as ``<name>_archived_<time>`` before a run
    without resume starts. The option checks catch what they can before that; for whatever still fails after it
    (a dataset that cannot be read, a network that cannot be built, Ctrl-C) before the run saved anything, the
    folders it made are removed and the archived ones put back, so a failing rerun leaves the user's trained
    experiment exactly as it was. A run that saved a model or training state keeps its folder."""
    original, made = misc.mkdir_and_rename, []

    def mkdir_and_rename(path):
        before = set(glob.glob(glob.escape(path) + '_archived_*'))
        existed = os.path.exists(path)
        original(path)
        made.append((path, sorted(set(glob.glob(glob.escape(path) + '_archived_*')) - before)[-1:] if existed
                     else []))

    holders = [m for m in (misc, module) if getattr(m, 'mkdir_and_rename', None) is original]
    for m in holders:
        m.mkdir_and_rename = mkdir_and_rename
    try:
        yield
    except BaseException:
        saved = any(files for path, _ in made for sub in ('models', 'training_states')
                    for _, _, files in os.walk(os.path.join(path, sub)))
        if not saved:
            for path, archived in reversed(made):
                shutil.rmtree(path, ignore_errors=True)
                if archived:
                    os.rename(archived[0], path)
                    print(f'note: the run stopped before it saved anything; {path} is back as it was', file=sys.stderr)
        raise
    finally:
        for m in holders:
            m.mkdir_and_rename = original


def run_pipeline(run, root=None):
    """Train or test (``run.is_train``) with BasicSR's own pipeline. Returns the run's Recorders (what it wrote)."""
    root = root or os.getcwd()
    for note in run.cpu_adjustments():
        print(f'note: {note}', file=sys.stderr)
    module = basicsr.train if run.is_train else basicsr.test
    pipeline = module.train_pipeline if run.is_train else module.test_pipeline
    rank = int(os.environ.get('RANK', '0'))  # under torchrun every rank runs this; the first one holds the folder
    holder = owned(os.path.join(root, 'experiments' if run.is_train else 'results'), run.name) if rank == 0 \
        else nullcontext()
    with holder, recording(run.is_train) as recorders, _parsed(module, run, root), \
            _archiving_undone_on_failure(module):
        pipeline(root)
    return recorders
