"""``basicsr schedule``: the stages of the recipe in order (``schedule/runner.py``), then a report: the final
model's score, a plot of validation PSNR across the stages and comparison crops.

``--profile smoke`` runs the same five stage files scaled down (small patches, few iterations, CPU) on LMDBs made
from scikit-image's built-in photos: the whole recipe end to end in a few minutes on a laptop.
"""
from __future__ import annotations

import argparse
import os
from typing import Optional

from . import add_command, add_override_flag


def add_parser(sub: 'argparse._SubParsersAction') -> argparse.ArgumentParser:
    from ..archs.pfdn.limits import SCALES
    from ..layout.locations import DEFAULT_SCHEDULE

    p = add_command(sub, 'schedule', 'run the chain of training stages in order, resuming',
                    'Run the stages of a schedule in order: finished stages (a net_g_latest.pth that loads) are '
                    'skipped, an interrupted stage is resumed from its last good training state. Every stage\'s data '
                    'and options are checked before the first starts. Prints stage i/N, progress, elapsed time and '
                    'an ETA (each stage\'s own log: experiments/[smoke_]schedule_logs/), and ends with a report '
                    '(score, PSNR plot, comparison crops).',
                    on_interrupt='rerun the same command to continue: finished stages are skipped, the stopped '
                                 'one resumes')
    p.add_argument('--schedule', default=DEFAULT_SCHEDULE, help='schedule yml listing the stage ymls')
    p.add_argument('--profile', choices=('full', 'smoke'), default='full',
                   help='full: the stage files as they are; smoke: scaled down, CPU, built-in photos')
    p.add_argument('--scale', type=int, choices=SCALES, default=4,
                   help='x2 or x3: every stage at that scale (same LR patches; upscale, LR data, names and metrics '
                        'follow: checks/scales.py)')
    p.add_argument('--verbose', action='store_true', help="show BasicSR's own output instead of logging it")
    add_override_flag(p, 'passed to every stage (keys must exist in every stage yml)')
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import yaml

    from ..files.atomic import write_text
    from ..checks.options import RunOptions
    from ..schedule.runner import Schedule
    from ..checks.scales import rescaled
    from ..schedule.stages import SMOKE_ROOT, load_schedule, make_smoke_data, smoke_stage

    stages = load_schedule(args.schedule)
    prefix = 'smoke_' if args.profile == 'smoke' else ''
    tag = '' if args.scale == 4 else f'_x{args.scale}'
    val_dir = None
    derived = []
    if args.scale != 4:
        stages = [(path, rescaled(opt, args.scale)) for path, opt in stages]
    if args.profile == 'smoke':
        print(f'smoke profile: preparing data from built-in sample photos in {SMOKE_ROOT}', flush=True)
        data = make_smoke_data(scale=args.scale)
        val_dir = data[2]
        names = [opt['name'] for _, opt in stages]
        stages = [(path, smoke_stage(opt, i, names, data)) for i, (path, opt) in enumerate(stages)]
    if args.profile == 'smoke' or args.scale != 4:  # the stage files as they will run, written for each stage
        out_dir = os.path.join('experiments', f'{prefix}schedule{tag}_options')
        os.makedirs(out_dir, exist_ok=True)
        for path, opt in stages:
            path = os.path.join(out_dir, os.path.basename(path).replace('_x4', f'_x{args.scale}'))
            write_text(path, yaml.safe_dump(opt, sort_keys=False))
            derived.append((path, opt))
        stages = derived
    overrides = args.force_yml or []
    checked = []
    for path, _ in stages:  # every stage's data and options, before the first one starts
        run = RunOptions(path, True, overrides, auto_resume=True).check(pretrained=False)
        checked.append((path, run.opt))  # as the stage will see them (--force_yml applied)
    Schedule(checked, os.path.join('experiments', f'{prefix}schedule{tag}_logs'),
             say=lambda line: print(line, flush=True)).run(overrides, args.verbose)
    report(checked, prefix + ('' if not tag else tag[1:] + '_'), val_dir, args.scale)
    return 0


def report(stages: list, prefix: str, val_dir: Optional[str], scale: int = 4) -> None:
    """The final deployed checkpoint scored on Set5 (or the smoke validation photos) next to bicubic, with the
    report's pictures; says where they were written."""
    from ..layout.experiment import Experiment
    from ..evaluation.report import schedule_report
    from ..schedule.stages import SET5

    if os.path.isdir(SET5):
        folder, label = SET5, 'Set5'
    elif val_dir:
        folder, label = os.path.join(val_dir, 'HR'), f'the built-in validation photos (no Set5 at {SET5})'
    else:
        final = Experiment(stages[-1][1]['name']).network('latest', deployed=True)
        print(f'final model: {final}; no Set5 at {SET5} to score it on (basicsr prepare benchmark --hr <Set5/HR> '
              f'--name Set5), or use basicsr test -opt options/test_pfdn_x{scale}.yml')
        return
    out = os.path.join('experiments', f'{prefix}schedule_report')
    val_hr = os.path.join(val_dir, 'HR') if val_dir else (SET5 if folder == SET5 else None)
    lines, files = schedule_report([(Experiment(opt['name']), opt['train']['total_iter']) for _, opt in stages], out,
                                   folder, label, val_hr, scale)
    print('\n' + '\n'.join(lines))
    print(f'report: {files[0]} (validation PSNR across the stages), {files[1]} (HR | bicubic | PFDN crops of each '
          'image)')
