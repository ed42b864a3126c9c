"""``basicsr schedule``: run the stages of the recipe in order; skip finished ones, resume an interrupted one.

``--profile smoke`` runs the same five stage files scaled down (small patches, few iterations, CPU) on an LMDB made
from scikit-image's built-in photos: the whole recipe end to end in a few minutes on a laptop.
"""
import copy
import os
import re
import signal
import subprocess
import sys
import time

import yaml

from ..atomic import write_text
from ..errors import UserError
from .main import parser

DEFAULT_SCHEDULE = 'options/schedule_pfdn_x4.yml'
# smoke profile: HR patch (LR = HR / 4; PFDN needs LR >= 15), iterations and batch per stage; stage 1 gets most
# of the few minutes so that the deployed result beats bicubic
SMOKE_GT_SIZES = (96, 112, 128, 144, 160)
SMOKE_ITERS = (1000, 40, 40, 40, 30)
SMOKE_BATCH = (8, 4, 4, 4, 4)
SMOKE_ROOT = 'datasets/smoke'
SMOKE_TRAIN = ('coffee.png', 'rocket.jpg', 'ihc.png', 'hubble_deep_field.jpg', 'motorcycle_left.png')
SMOKE_VAL = ('astronaut.png', 'chelsea.png')
SET5_CANDIDATES = ('datasets/benchmark/Set5/HR', '../shared/data/benchmark/Set5/HR')
LOG_PATTERN = re.compile(r'\] \[eta:|Validation|# psnr|# ssim|Reparameteriz|NCC loss|Resuming|Error|error')


def _package_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def resolve(path):
    """A path as given, else relative to the source checkout (so options/ is found from any working dir)."""
    if os.path.exists(path):
        return path
    alt = os.path.join(_package_root(), path)
    return alt if os.path.exists(alt) else path


def load_yml(path):
    path = resolve(path)
    if not os.path.isfile(path):
        raise UserError(f'file not found: {path}')
    with open(path) as f:
        return yaml.safe_load(f)


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


def stage_progress(name):
    """Last saved iteration of a stage (0 when none)."""
    states = os.path.join('experiments', name, 'training_states')
    its = [int(f.split('.')[0]) for f in os.listdir(states)] if os.path.isdir(states) else []
    return max(its, default=0)


def make_smoke_data(root=SMOKE_ROOT):
    """Paired decoded LMDBs of the built-in photos (whole images; x4 LR by MATLAB-style bicubic) for
    ``PairedCropDataset``, plus a small validation set. Reuses what exists, so it is made once; every step
    continues an interrupted one."""
    from ..data.prepare import make_lr, make_paired_lmdb, prepare_benchmark
    from ..data.samples import write_samples

    gt_lmdb = os.path.join(root, 'train_HR.lmdb')
    lq_lmdb = os.path.join(root, 'train_LR_X4.lmdb')
    val = os.path.join(root, 'val')
    if not (os.path.isdir(gt_lmdb) and os.path.isdir(lq_lmdb)):
        photos = os.path.join(root, 'photos_train')
        write_samples(photos, SMOKE_TRAIN)
        make_lr(photos, os.path.join(root, 'train_LR_X4'), 4)
        make_paired_lmdb(photos, os.path.join(root, 'train_LR_X4'), gt_lmdb, lq_lmdb, 'decoded', 4)
    if not os.path.isdir(os.path.join(val, 'LR_bicubic', 'X4')):
        write_samples(os.path.join(root, 'photos_val'), SMOKE_VAL)
        prepare_benchmark(os.path.join(root, 'photos_val'), 'val', root=root)
    return gt_lmdb, lq_lmdb, val


def scaled_stage(opt, name, gt_size, total, batch, data, path_map=None):
    """A copy of a stage's options scaled down for the CPU (same structure, losses and hand-offs): new name,
    patch size, iterations (milestones scaled with them), batch, data (decoded LMDBs, read in the main process)
    and validation set, the GPU step options off (fp32, eager: compiling costs more than a short CPU stage
    runs); ``path_map`` rewrites substrings of ``path.*`` (how the previous stage's checkpoint is found)."""
    gt_lmdb, lq_lmdb, val = data
    opt = copy.deepcopy(opt)
    opt['name'] = name
    opt['num_gpu'] = 0
    train = opt['datasets']['train']
    train.pop('io_backend', None)
    train.update(type='PairedCropDataset', dataroot_gt=gt_lmdb, dataroot_lq=lq_lmdb, gt_size=gt_size,
                 batch_size_per_gpu=batch, num_worker_per_gpu=0, prefetch_mode=None, pin_memory=False,
                 persistent_workers=False)
    opt['train'].update(amp='none', channels_last=False, compile=False)
    if val is None:  # no validation (benchmarks)
        opt['datasets'].pop('val', None)
        opt.pop('val', None)
    else:
        opt['datasets']['val'].update(name=os.path.basename(val.rstrip('/')), dataroot_gt=os.path.join(val, 'HR'),
                                      dataroot_lq=os.path.join(val, 'LR_bicubic', 'X4'))
    for key, value in list(opt['path'].items()):
        if isinstance(value, str):
            for old, new in (path_map or {}).items():
                value = value.replace(old, new)
            opt['path'][key] = value
    sched = opt['train']['scheduler']
    full = opt['train']['total_iter']
    sched['milestones'] = [max(1, m * total // full) for m in sched.get('milestones', [])]
    opt['train']['total_iter'] = total
    if 'val' in opt:
        opt['val']['val_freq'] = total
    opt['logger'].update(print_freq=max(1, total // 4), save_checkpoint_freq=max(1, total // 2))
    return opt


def smoke_stage(opt, index, names, data, iters=SMOKE_ITERS):
    """A real stage scaled to the smoke profile; the chain's paths point at the smoke experiments."""
    return scaled_stage(opt, 'smoke_' + opt['name'], SMOKE_GT_SIZES[index], iters[index], SMOKE_BATCH[index], data,
                        {f'experiments/{n}/': f'experiments/smoke_{n}/' for n in names})


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


def final_report(name, val_dir):
    """Score the last stage's deployed checkpoint on Set5 (when present) next to bicubic."""
    from ..checkpoint import build_pfdn_from_checkpoint
    from ..evaluate import evaluate_folder

    ckpt = os.path.join('experiments', name, 'models', 'net_g_deploy_latest.pth')
    net, _ = build_pfdn_from_checkpoint(ckpt)
    net.eval()
    folder = next((resolve(p) for p in SET5_CANDIDATES if os.path.isdir(resolve(p))), None)
    label = 'Set5'
    if folder is None:
        folder, label = os.path.join(val_dir, 'HR'), 'built-in val photos (Set5 not found)'
    bic = evaluate_folder(None, folder, bicubic=True)
    sr = evaluate_folder(net, folder)
    print(f'\ndeployed checkpoint: {ckpt}')
    print(f'| x4 on {label} | PSNR (Y) | SSIM (Y) |\n| --- | --- | --- |')
    print(f"| bicubic | {bic['psnr']:.2f} | {bic['ssim']:.4f} |\n| PFDN ({name}) | {sr['psnr']:.2f} | {sr['ssim']:.4f} |")
    return sr, bic


def main(argv, prog='basicsr schedule'):
    p = parser(prog, 'Run the stages of a schedule in order: finished stages (net_g_latest.pth saved) are '
                     'skipped, an interrupted stage is resumed from its last training state.')
    p.add_argument('--schedule', default=DEFAULT_SCHEDULE, help=f'schedule yml listing stages (default: '
                                                                 f'{DEFAULT_SCHEDULE})')
    p.add_argument('--profile', choices=('full', 'smoke'), default='full',
                   help='full: the stage files as they are; smoke: scaled down, CPU, built-in photos')
    p.add_argument('--verbose', action='store_true', help="show all of BasicSR's output")
    args, extra = p.parse_known_args(argv)
    stages = (load_yml(args.schedule) or {}).get('stages') or []
    if not stages:
        raise UserError(f'{args.schedule} lists no stages')
    opts = [load_yml(s) for s in stages]
    names = [o['name'] for o in opts]
    paths = [resolve(s) for s in stages]
    val_dir = None
    if args.profile == 'smoke':
        print('smoke profile: preparing data from built-in sample photos in', SMOKE_ROOT)
        data = make_smoke_data()
        val_dir = data[2]
        out_dir = os.path.join('experiments', 'smoke_schedule_options')
        os.makedirs(out_dir, exist_ok=True)
        new_paths = []
        for i, (opt, path) in enumerate(zip(opts, paths)):
            opts[i] = smoke_stage(opt, i, names, data)
            new_paths.append(os.path.join(out_dir, os.path.basename(path)))
            write_text(new_paths[-1], yaml.safe_dump(opts[i], sort_keys=False))
        paths = new_paths
        names = [o['name'] for o in opts]
    from .pipelines import check_options
    for path in paths:  # every stage's data and options, before the first one starts
        check_options(path, True, ['--auto_resume'] + extra, pretrained=False)
    start = time.time()
    for i, (path, opt) in enumerate(zip(paths, opts)):
        name, total = opt['name'], opt['train']['total_iter']
        head = f'[stage {i + 1}/{len(paths)}] {name}'
        if stage_done(name):
            print(f'{head}: finished earlier, skipped')
            continue
        done = stage_progress(name)
        what = f'resuming at iter {done}/{total}' if done else f'{total} iters'
        lr = opt['datasets']['train']['gt_size'] // opt.get('scale', 4)
        form = 'deployed form' if opt['network_g'].get('deploy') else 'training form'
        print(f'{head}: {what}, LR patch {lr}, {form}'
              + (', reparameterized at start' if opt['train'].get('reparameterize_on_start') else ''), flush=True)
        t0 = time.time()
        run_stage(path, name, args.verbose, extra)
        print(f'{head}: done in {time.time() - t0:.0f} s (schedule: {time.time() - start:.0f} s so far)', flush=True)
    if args.profile == 'smoke' or val_dir is None:
        final_report(names[-1], val_dir or SMOKE_ROOT + '/val')
