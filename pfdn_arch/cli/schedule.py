"""``basicsr schedule``: run the stages of the recipe in order (each as ``basicsr train --auto_resume`` in a child
process); skip finished ones, resume an interrupted one; end with a report: the final model's score, a plot of
validation PSNR across the stages and comparison crops.

``--profile smoke`` runs the same five stage files scaled down (small patches, few iterations, CPU) on LMDBs made
from scikit-image's built-in photos: the whole recipe end to end in a few minutes on a laptop.
"""
import os
import re
import signal
import subprocess
import sys
import time

from ..errors import UserError
from . import add_command

LOG_PATTERN = re.compile(r'\] \[eta:|Validation|# psnr|# ssim|Reparameteriz|NCC loss|Resuming|Error|error')


def add_parser(sub):
    from ..recipe import DEFAULT_SCHEDULE

    p = add_command(sub, 'schedule', 'run the chain of training stages in order, resuming',
                    'Run the stages of a schedule in order: finished stages (a net_g_latest.pth that loads) are '
                    'skipped, an interrupted stage is resumed from its last good training state. Every stage\'s data '
                    'and options are checked before the first starts. Prints stage i/N, elapsed time and an ETA, and '
                    'ends with a report (score, PSNR plot, comparison crops).',
                    on_interrupt='rerun the same command to continue: finished stages are skipped, the stopped '
                                 'one resumes')
    p.add_argument('--schedule', default=DEFAULT_SCHEDULE, help='schedule yml listing the stage ymls')
    p.add_argument('--profile', choices=('full', 'smoke'), default='full',
                   help='full: the stage files as they are; smoke: scaled down, CPU, built-in photos')
    p.add_argument('--verbose', action='store_true', help="show all of BasicSR's output")
    p.add_argument('--force_yml', nargs='+', metavar='KEY:SUB=VALUE', default=None,
                   help='passed to every stage (keys must exist in every stage yml)')
    p.set_defaults(func=run)
    return p


def run(args):
    from ..atomic import write_text
    from ..recipe import SMOKE_ROOT, load_schedule, make_smoke_data, smoke_stage, stage_progress, stage_work
    from .pipelines import check_options

    import yaml

    stages = load_schedule(args.schedule)
    val_dir = None
    if args.profile == 'smoke':
        print(f'smoke profile: preparing data from built-in sample photos in {SMOKE_ROOT}', flush=True)
        data = make_smoke_data()
        val_dir = data[2]
        names = [opt['name'] for _, opt in stages]
        out_dir = os.path.join('experiments', 'smoke_schedule_options')
        os.makedirs(out_dir, exist_ok=True)
        scaled = []
        for i, (path, opt) in enumerate(stages):
            opt = smoke_stage(opt, i, names, data)
            path = os.path.join(out_dir, os.path.basename(path))
            write_text(path, yaml.safe_dump(opt, sort_keys=False))
            scaled.append((path, opt))
        stages = scaled
    extra = ['--force_yml', *args.force_yml] if args.force_yml else []
    for path, _ in stages:  # every stage's data and options, before the first one starts
        check_options(path, True, ['-opt', path, '--auto_resume'] + extra, pretrained=False)
    start, work_done, n = time.time(), 0, len(stages)
    work = [stage_work(opt) for _, opt in stages]
    for i, (path, opt) in enumerate(stages):
        name, total = opt['name'], opt['train']['total_iter']
        head = f'[stage {i + 1}/{n}] {name}'
        if stage_done(name):
            print(f'{head}: finished earlier, skipped', flush=True)
            continue
        done = stage_progress(name)
        left = sum(work[i:]) - work[i] * done / total
        eta = (f'ETA {_duration((time.time() - start) / work_done * left)}' if work_done else
               'ETA after the first stage')
        lr = opt['datasets']['train']['gt_size'] // opt.get('scale', 4)
        form = 'deployed form' if opt['network_g'].get('deploy') else 'training form'
        what = f'resuming at iter {done}/{total}' if done else f'{total} iters'
        print(f'{head}: {what}, LR patch {lr}, {form} | schedule {_duration(time.time() - start)} elapsed, {eta}',
              flush=True)
        t0 = time.time()
        run_stage(path, name, args.verbose, extra)
        work_done += work[i] * (total - done) / total
        print(f'{head}: done in {_duration(time.time() - t0)}', flush=True)
    print(f'schedule: all {n} stages finished ({_duration(time.time() - start)} in this run)', flush=True)
    report(stages, args.profile, val_dir)


def _duration(seconds):
    seconds = int(seconds)
    return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m' if seconds >= 3600 else f'{seconds // 60}m{seconds % 60:02d}s'


def stage_done(name):
    """A stage is finished when its final checkpoint loads; a damaged one is set aside and the stage resumed."""
    from ..checkpoint import load_checkpoint, set_aside

    path = os.path.join('experiments', name, 'models', 'net_g_latest.pth')
    if not os.path.isfile(path):
        return False
    try:
        load_checkpoint(path)
        return True
    except UserError as err:
        set_aside(path, str(err).split(': ', 1)[-1])
        return False


def _die_with_parent():
    """In the stage's process: receive SIGTERM when the schedule process dies, however it dies (Linux), so a
    stage never trains on with nobody waiting for it."""
    try:
        import ctypes
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_stage(opt_path, name, verbose, extra):
    cmd = [sys.executable, '-m', 'pfdn_arch.cli', 'train', '-opt', opt_path, '--auto_resume'] + extra
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            preexec_fn=_die_with_parent if sys.platform.startswith('linux') else None)
    tail = []
    try:
        for line in proc.stdout:
            tail = (tail + [line])[-30:]
            if verbose or LOG_PATTERN.search(line):
                sys.stdout.write('    ' + line)
                sys.stdout.flush()
        code = proc.wait()
    except BaseException:  # Ctrl-C, SIGTERM (raised as KeyboardInterrupt by the CLI): stop the stage too
        stop(proc)
        raise
    if code == 0:
        return
    errors = [t.strip()[len('error: '):] for t in tail if t.startswith('error: ')]
    if code == 2 and errors:  # the stage refused its input: the same line, once; a rerun would not help
        raise UserError(f'stage {name}: {errors[-1]}')
    if code in (130, -signal.SIGINT, -signal.SIGTERM):
        raise KeyboardInterrupt
    sys.stdout.write(''.join('    | ' + t for t in tail))
    log = os.path.join('experiments', name)
    raise UserError(f'stage {name} failed (exit {code})' + (f'; its log is in {log}/' if os.path.isdir(log) else '')
                    + '; fix the cause shown above and rerun the same command to resume it')


def stop(proc, grace=60):
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def report(stages, profile, val_dir):
    """The final deployed checkpoint scored on Set5 (or the smoke validation photos) next to bicubic, a plot of
    every stage's validation PSNR, and comparison crops of the final model; says where they were written."""
    import torch

    from ..checkpoint import build_pfdn_from_checkpoint
    from ..evaluate import evaluate_folder
    from ..images import bicubic_lr, list_images, read_image, to_image, to_tensor, write_image
    from ..recipe import SET5, validation_history
    from ..visualize import comparison_strip, psnr_plot

    name = stages[-1][1]['name']
    ckpt = os.path.join('experiments', name, 'models', 'net_g_deploy_latest.pth')
    folder, label = (SET5, 'Set5') if os.path.isdir(SET5) else (
        (os.path.join(val_dir, 'HR'), 'the built-in validation photos (no Set5 at ' + SET5 + ')') if val_dir
        else (None, None))
    if folder is None:
        print(f'final model: {ckpt}; no Set5 at {SET5} to score it on (basicsr prepare benchmark --hr <Set5/HR> '
              '--name Set5), or use basicsr test -opt options/test_pfdn_x4.yml')
        return
    net, _ = build_pfdn_from_checkpoint(ckpt)
    net.eval()
    bic = evaluate_folder(None, folder, bicubic=True)
    sr = evaluate_folder(net, folder)
    print(f'\ndeployed checkpoint: {ckpt}')
    print(f'| x4 on {label} | PSNR (Y) | SSIM (Y) |\n| --- | --- | --- |')
    print(f"| bicubic | {bic['psnr']:.2f} | {bic['ssim']:.4f} |\n| PFDN ({name}) | {sr['psnr']:.2f} | {sr['ssim']:.4f} |")
    out = os.path.join('experiments', f'{"smoke_" if profile == "smoke" else ""}schedule_report')
    os.makedirs(out, exist_ok=True)
    curves = []
    for _, opt in stages:
        points = [(v['iter'], v['psnr']) for v in validation_history(opt['name']) if 'psnr' in v]
        curves.append((opt['name'], opt['train']['total_iter'], points))
    # the line to beat: bicubic on the stages' validation set (the smoke photos, or Set5 as the ymls name it)
    val_hr = os.path.join(val_dir, 'HR') if val_dir else (SET5 if folder == SET5 else None)
    val_bicubic = (bic if val_hr == folder else evaluate_folder(None, val_hr, bicubic=True))['psnr'] if val_hr else None
    val_name = stages[-1][1]['datasets'].get('val', {}).get('name', 'validation set')
    write_image(os.path.join(out, 'psnr.png'), psnr_plot(curves, val_bicubic,
                                                         f'{val_name}: validation PSNR (dB, Y) across the stages'))
    hr, lr = bicubic_lr(read_image(list_images(folder)[0]), 4)
    with torch.no_grad():
        result = to_image(net(to_tensor(lr)))
    write_image(os.path.join(out, 'comparison.png'), comparison_strip(hr, lr, result, 4))
    print(f'report: {out}/psnr.png (validation PSNR across the stages), {out}/comparison.png (HR | bicubic | PFDN)')
