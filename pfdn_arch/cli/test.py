"""``basicsr test`` (and ``python -m basicsr.test``): check the yml, then BasicSR's stock ``test_pipeline``."""
from __future__ import annotations

import argparse
import sys

from . import add_basicsr_flags, add_command


def add_parser(sub: 'argparse._SubParsersAction') -> argparse.ArgumentParser:
    p = add_command(sub, 'test', "test with BasicSR's test_pipeline (Set5 / Urban100 tables)",
                    "Check the options file, then run BasicSR's own test_pipeline with the working directory as root; "
                    'metrics go to results/<name>/ (a Markdown table in results.md), e.g. basicsr test -opt '
                    'options/test_pfdn_x4.yml.')
    add_basicsr_flags(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..checks.options import RunOptions
    from ..runs.pipeline import run_pipeline
    from ..runs.results import TABLE

    from ..layout.locations import describe_weights

    options = RunOptions(args.opt, False, args.force_yml, args.launcher, args.auto_resume, args.debug,
                         args.local_rank).check()
    weights = options.opt['path'].get('pretrain_network_g')
    if weights:
        print(f'weights: {describe_weights(weights)}', file=sys.stderr)
    written = run_pipeline(options)
    table = ('results.md: the metrics table; the log' if any(p.endswith(TABLE) for p in written) else
             'the log; the model recorded no metrics to tabulate')
    print(f'results: results/{options.name}/ ({table})', file=sys.stderr)
    return 0
