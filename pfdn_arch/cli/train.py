"""``basicsr train`` (and ``python -m basicsr.train``): check the yml, then BasicSR's stock ``train_pipeline``."""
from __future__ import annotations

import argparse
import os
import sys

from . import add_basicsr_flags, add_command


def add_parser(sub: 'argparse._SubParsersAction') -> argparse.ArgumentParser:
    p = add_command(sub, 'train', "train with BasicSR's train_pipeline",
                    "Check the options file (files, datasets, devices), then run BasicSR's own train_pipeline with "
                    'the working directory as root (experiments/<name>/). Multi-GPU: torchrun --nproc_per_node=N -m '
                    'basicsr.train -opt X --launcher pytorch.',
                    on_interrupt=after_interrupt)
    add_basicsr_flags(p)
    p.set_defaults(func=run)
    return p


def after_interrupt(args: argparse.Namespace) -> str:
    """What a rerun can do, from what was saved: --auto_resume only where a training state loads."""
    from ..layout.experiment import Experiment

    name = getattr(args, 'experiment', None)
    if name is None:
        return 'it stopped before training began; nothing was saved: run the same command to start'
    exp = Experiment(name)
    exp.folder = os.path.normpath(exp.folder)  # experiments/<name>, as BasicSR's lines name it
    state, _ = exp.newest_resumable_state()
    if state is None:
        return (f'nothing was saved yet (no training state in {exp.training_states}): run the same command to '
                'start again')
    it = os.path.splitext(os.path.basename(state))[0]
    return f'rerun it with --auto_resume to continue from the training state saved at iter {it} ({state})'


def run(args: argparse.Namespace) -> int:
    from ..checks.options import RunOptions
    from ..runs.pipeline import run_pipeline

    options = RunOptions(args.opt, True, args.force_yml, args.launcher, args.auto_resume, args.debug,
                         args.local_rank).check()
    args.experiment = options.name  # what Ctrl-C's line looks at (after_interrupt)
    run_pipeline(options)
    print(f'results: experiments/{options.name}/ (models/, training_states/, the log)', file=sys.stderr)
    return 0
