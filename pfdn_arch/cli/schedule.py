"""``basicsr schedule``: the stages of the recipe in order (``schedule/runner.py``), then a report: the final
model's score, a plot of validation PSNR across the stages and comparison crops.

``--profile smoke`` runs the same five stage files scaled down (small patches, few iterations, CPU) on LMDBs made
from scikit-image's built-in photos: the whole recipe end to end in a few minutes on a laptop. ``--profile cpu
--hr my_photos/`` scales the stages the same way (a few more iterations) and trains on the user's photos,
validated on Set5 where ``prepare benchmark`` made it. ``--out`` copies the final deployed checkpoint to a file of
the user's choosing.
"""
from __future__ import annotations

import argparse
import os
from typing import Optional

from . import add_command, add_override_flag


def add_parser(sub: 'argparse._SubParsersAction') -> argparse.ArgumentParser:
    from ..archs.pfdn.limits import SCALES
    from ..layout.locations import DEFAULT_SCHEDULE
    from ..schedule.profiles import OWN_ROOT, PROFILES

    p = add_command(sub, 'schedule', 'run the chain of training stages in order, resuming',
                    'Run the stages of a schedule in order: finished stages (a net_g_latest.pth that loads) are '
                    'skipped, an interrupted stage is resumed from its last good training state. Every stage\'s data '
                    'and options are checked before the first starts. Prints stage i/N, progress, elapsed time and '
                    'an ETA (each stage\'s own log: experiments/[smoke_]schedule_logs/), and ends with a report '
                    '(score, PSNR plot, comparison crops).',
                    on_interrupt='rerun the same command to continue: finished stages are skipped, the stopped '
                                 'one resumes from its last saved training state (or starts again if none was saved)')
    p.add_argument('--schedule', default=DEFAULT_SCHEDULE, help='schedule yml listing the stage ymls')
    p.add_argument('--profile', choices=tuple(PROFILES), default='full',
                   help='full: the stage files as they are (GPUs: days); smoke: scaled down to minutes on a CPU, on '
                        'built-in photos; cpu: scaled down the same way (a few more iterations), on your photos '
                        '(--hr), validated on Set5 where basicsr prepare benchmark made it')
    p.add_argument('--hr', metavar='FOLDER', help='--profile cpu: the folder of your HR photos to train on (what '
                                                  'basicsr prepare reads, HEIC included); LR images and LMDBs go to '
                                                  f'{OWN_ROOT}/')
    p.add_argument('--out', metavar='FILE.pth', help='copy the final deployed checkpoint (the released layout, for '
                                                     'basicsr infer --weights) to this file')
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
    from ..schedule.profiles import CPU_ITERS, PROFILES, SMOKE_ITERS, SMOKE_ROOT
    from ..schedule.stages import load_schedule, make_own_data, make_smoke_data, smoke_stage

    photos = own_photos(args)
    if args.out:
        deliverable(args.out)  # before hours of training, not after
    stages = load_schedule(args.schedule)
    prefix = PROFILES[args.profile]
    tag = '' if args.scale == 4 else f'_x{args.scale}'
    val_dir = None
    derived = []
    if args.scale != 4:
        stages = [(path, rescaled(opt, args.scale)) for path, opt in stages]
    if args.profile in ('smoke', 'cpu'):
        names = [opt['name'] for _, opt in stages]
        if args.profile == 'smoke':
            print(f'smoke profile: preparing data from built-in sample photos in {SMOKE_ROOT}', flush=True)
            data = make_smoke_data(scale=args.scale)
        else:
            print(f'cpu profile: preparing data from {args.hr} ({len(photos)} photos)', flush=True)
            data = make_own_data(args.hr, scale=args.scale)
            set_aside_other_photos_runs([prefix + n for n in names], photos, tag)
        val_dir = data[2]
        iters = CPU_ITERS if args.profile == 'cpu' else SMOKE_ITERS
        stages = [(path, smoke_stage(opt, i, names, data, iters, prefix)) for i, (path, opt) in enumerate(stages)]
    if prefix or args.scale != 4:  # the stage files as they will run, written for each stage
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
    if args.out:
        deliver(checked[-1][1]['name'], args.out)
    return 0


def own_photos(args: argparse.Namespace) -> list:
    """The photos ``--hr`` names (``--profile cpu`` only, where it is required); one line where they are not."""
    from ..data.preparation import images_in
    from ..errors import DataError, OptionsError

    if args.profile != 'cpu':
        if args.hr:
            raise OptionsError(f'is for --profile cpu (your photos); --profile {args.profile} trains on '
                               + ('built-in photos' if args.profile == 'smoke' else "the stage files' datasets"), 'hr')
        return []
    if not args.hr:
        raise OptionsError('--profile cpu trains on your photos: give their folder, e.g. --hr my_photos/', 'hr')
    try:
        return images_in(args.hr)  # the check prepare's folders get: not a folder, or no pictures in it
    except DataError as err:
        raise OptionsError(str(err), 'hr') from None  # the line names the flag too


def set_aside_other_photos_runs(names: list, photos: list, tag: str) -> None:
    """The cpu profile's experiments were trained on the photos recorded in ``experiments/cpu_schedule_options/
    photos.json``: where these photos are others (or the record is gone: doubt), the experiments are renamed
    ``<name>_archived_<time>`` as BasicSR sets aside a run it does not resume, so the schedule trains on these from
    the start and nothing is lost."""
    import json
    import time

    from ..files.atomic import read_json, write_text
    from ..files.sources import digest

    folder = os.path.join('experiments', f'cpu_schedule{tag}_options')
    record = os.path.join(folder, 'photos.json')
    now = {os.path.basename(p): digest(p) for p in photos}
    if read_json(record) != now:
        stamp = time.strftime('%Y%m%d_%H%M%S')
        for name in names:
            folder_of = os.path.join('experiments', name)
            if os.path.isdir(folder_of):
                target, n = f'{folder_of}_archived_{stamp}', 1
                while os.path.lexists(target):  # set aside twice within a second: never onto the first
                    n += 1
                    target = f'{folder_of}_archived_{stamp}_{n}'
                os.replace(folder_of, target)
                print(f'note: {folder_of} was trained on other photos: set aside as {target}', flush=True)
    os.makedirs(folder, exist_ok=True)
    write_text(record, json.dumps(now, indent=1, sort_keys=True))


def deliverable(out: str) -> None:
    """``--out`` may be written: a new file, or one this command wrote (its record says so); never the user's."""
    from ..errors import OutputExists
    from ..files.made import UNKNOWN, Made
    from ..files.paths import output_file

    output_file(out)
    if os.path.lexists(out) and Made(out).verdict(OUT_WORK) == UNKNOWN:
        raise OutputExists(out, 'exists and is not a model basicsr schedule wrote; it was left as it is: choose '
                                'another --out')


OUT_WORK = {'made by': 'basicsr schedule --out'}  # what the record beside --out says made it


def deliver(final_stage: str, out: str) -> None:
    """The final stage's deployed checkpoint, checked (it loads, every weight finite), copied to ``out``
    atomically (its record first)."""
    from ..files.atomic import write_bytes
    from ..files.checkpoints import load_checkpoint
    from ..files.made import Made, bytes_digest
    from ..layout.experiment import Experiment

    final = Experiment(final_stage).network('latest', deployed=True)
    load_checkpoint(final)
    deliverable(out)
    with open(final, 'rb') as f:
        data = f.read()
    Made(out).record(bytes_digest(data), OUT_WORK)
    write_bytes(out, data)
    print(f'your model: {out} (the released layout: basicsr infer -i photo.jpg -o photo_x4.png --weights {out})')


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
