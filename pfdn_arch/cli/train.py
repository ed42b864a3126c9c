"""``basicsr train`` (and ``python -m basicsr.train``): check the yml, then BasicSR's stock ``train_pipeline``."""
from __future__ import annotations

import argparse
import sys

from . import add_basicsr_flags, add_command


def add_parser(sub: 'argparse._SubParsersAction') -> argparse.ArgumentParser:
    p = add_command(sub, 'train', "train with BasicSR's train_pipeline",
                    "Check the options file (files, datasets, devices), then run BasicSR's own train_pipeline with "
                    'the working directory as root (experiments/<name>/). Multi-GPU: torchrun --nproc_per_node=N -m '
                    'basicsr.train -opt X --launcher pytorch.',
                    on_interrupt='rerun it with --auto_resume to continue from the last saved training state')
    add_basicsr_flags(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..checks.options import RunOptions
    from ..runs.pipeline import run_pipeline

    options = RunOptions(args.opt, True, args.force_yml, args.launcher, args.auto_resume, args.debug,
                         args.local_rank).check()
    run_pipeline(options)
    print(f'results: experiments/{options.name}/ (models/, training_states/, the log)', file=sys.stderr)
    return 0
