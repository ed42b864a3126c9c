"""BasicSR's stock ``train_pipeline`` and ``test_pipeline``, run with a checked ``RunOptions`` and the working
directory as root (so experiments and results go under it, never into site-packages), with every model's
validations recorded (``results``). BasicSR's ``parse_options`` would read ``sys.argv``; for the length of the run
the pipeline's ``parse_options`` hands it the options already parsed instead.
"""
import os
import sys
from contextlib import contextmanager, nullcontext

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


def run_pipeline(run, root=None):
    """Train or test (``run.is_train``) with BasicSR's own pipeline. Returns the run's Recorders (what it wrote)."""
    root = root or os.getcwd()
    for note in run.cpu_adjustments():
        print(f'note: {note}', file=sys.stderr)
    if run.is_train:
        import basicsr.train as module
        pipeline = module.train_pipeline
    else:
        import basicsr.test as module
        pipeline = module.test_pipeline
    rank = int(os.environ.get('RANK', '0'))  # under torchrun every rank runs this; the first one holds the folder
    holder = owned(os.path.join(root, 'experiments' if run.is_train else 'results'), run.name) if rank == 0 \
        else nullcontext()
    with holder, recording(run.is_train) as recorders, _parsed(module, run, root):
        pipeline(root)
    return recorders
