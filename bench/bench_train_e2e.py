"""Training speed end to end: the data path, the model step, `basicsr train`'s loop, and the whole schedule.

    python bench/bench_train_e2e.py                          # CPU: smoke shape, 2 workers
    python bench/bench_train_e2e.py --device cuda --matrix   # GPU: stage-1 shape, options on/off, fine-tune shape

1. Data only: samples/s per DataLoader worker of BasicSR's PairedImageDataset on 960-px PNG sub-image LMDBs (what
   `basicsr prepare df2k --format png` makes) against PairedCropDataset on decoded LMDBs (`basicsr prepare df2k`),
   both made from the same photos (../shared SunHays80, resized so that the short side is 960 px; built-in photos
   without ../shared), random 256-px crops (stage 1), flips and rotations; disk use of both.
2. Model only: `PFDNModel.feed_data` + `optimize_parameters` on a batch already in memory (the stage-1 yml's
   options for the device: the smoke profile's fp32 eager step on CPU, bf16 + channels_last + compile on CUDA), in a
   fresh process like the end-to-end run's (same threads, same imports), before and after the end-to-end runs. The
   loop includes the step, so a ratio below 0.95, or two step measurements more than 15% apart, mean the two were not
   measured under the same conditions: the bench then says so instead of printing the ratio.
3. End to end: `basicsr train` (BasicSR's own loop, in a subprocess) with the same model and the decoded data, and
   with the stock PNG data; iteration time and the part spent waiting for data, read from BasicSR's log.
4. Projected time of the whole schedule (options/schedule_pfdn_x4.yml, each stage's whole batch on one device):
   on CUDA each stage's model step is measured at its real shape with its yml's options (eager, times the
   compiled/eager ratio measured at stage 1 where the yml compiles); on CPU it is scaled from the measured step by
   LR pixels per batch. Times the end-to-end factor measured in 3.
With --matrix: the model step with each option on and off (batch 96 and 24 at LR 64, and the fine-tune shape).
The last line reads `data speedup: X.Xx per worker; end-to-end / model step: Y.YY`.
"""
import argparse
import copy
import glob
import os
import re
import subprocess
import sys
import time

import cv2
import torch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import pfdn_arch  # noqa: E402,F401
from basicsr.data import build_dataset  # noqa: E402
from basicsr.models import build_model  # noqa: E402
from pfdn_arch.data import preparation as prep  # noqa: E402
from pfdn_arch.checks.options import RunOptions, read_yml  # noqa: E402
from pfdn_arch.schedule.stages import scaled_stage  # noqa: E402
from pfdn_arch.layout.samples import write_samples  # noqa: E402

SUNHAYS = os.path.join(ROOT, '..', 'shared', 'data', 'train', 'SunHays80', 'HR')
STAGE_FILES = ('train_pfdn_x4.yml', 'train_pfdn_x4_lr128.yml', 'train_pfdn_x4_lr160.yml', 'train_pfdn_x4_lr180.yml',
               'finetune_pfdn_x4_lr240.yml')
GPUS_IN_YML = 4  # the ymls give batch_size_per_gpu for the factsheet's 4 GPUs


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def prepare_data(work, photos=SUNHAYS):
    """Both forms from the same photos; made once under ``work``."""
    src = os.path.join(work, 'photos960')
    if not os.path.isdir(src):
        os.makedirs(src + '.tmp', exist_ok=True)
        paths = sorted(glob.glob(os.path.join(photos, '*.jpg')) + glob.glob(os.path.join(photos, '*.png')))
        if not paths:
            paths = write_samples(os.path.join(work, 'samples'))
        for p in paths:
            img = cv2.imread(p)
            f = 960 / min(img.shape[:2])
            size = (int(round(img.shape[1] * f / 4)) * 4, int(round(img.shape[0] * f / 4)) * 4)
            cv2.imwrite(os.path.join(src + '.tmp', os.path.splitext(os.path.basename(p))[0] + '.png'),
                        cv2.resize(img, size, interpolation=cv2.INTER_CUBIC))
        os.rename(src + '.tmp', src)
    out = {}
    for fmt in ('png', 'decoded'):
        gt, lq = prep.prepare_df2k([src], os.path.join(work, fmt), fmt, 4, 960, 480, workers=os.cpu_count())
        out[fmt] = (gt, lq)
    return src, out


def dataset_opt(fmt, paths, gt_size=256):
    gt, lq = paths
    opt = dict(name='bench', phase='train', scale=4, gt_size=gt_size, use_hflip=True, use_rot=True,
               dataroot_gt=gt, dataroot_lq=lq)
    if fmt == 'png':
        opt.update(type='PairedImageDataset', io_backend={'type': 'lmdb'})
    else:
        opt.update(type='PairedCropDataset')
    return opt


def data_throughput(opt, workers, batch, seconds):
    """Samples per second of a DataLoader over the dataset (random order, drop_last, like BasicSR's)."""
    loader = torch.utils.data.DataLoader(build_dataset(opt), batch_size=batch, shuffle=True, num_workers=workers,
                                         drop_last=True, persistent_workers=workers > 0)
    it = iter(loader)
    for _ in range(max(2, workers)):  # warm-up: workers started, first batches made
        next(it)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        try:
            n += len(next(it)['gt'])
        except StopIteration:
            it = iter(loader)
    return n / (time.perf_counter() - t0)


def stage_opt(base_yml, name, gt_size, batch, data, device, workers, iters):
    """A stage yml at a given shape on the bench's data: the smoke profile's scaling (fp32 eager on CPU); on
    CUDA the stage's own GPU options (amp, channels_last, compile, prefetch) are kept."""
    opt = read_yml(os.path.join(ROOT, 'options', base_yml))
    gpu = {k: opt['train'].get(k) for k in ('amp', 'channels_last', 'compile')}
    scaled = scaled_stage(opt, name, gt_size, iters, batch, tuple(data) + (None,))
    scaled['path'] = {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None}
    scaled.pop('network_t', None)
    scaled['train'].pop('ncc_opt', None)
    scaled['train']['scheduler']['milestones'] = []
    scaled['logger'].update(print_freq=10, save_checkpoint_freq=10**9, use_tb_logger=False)
    scaled['datasets']['train']['num_worker_per_gpu'] = workers
    if device == 'cuda':
        scaled['num_gpu'] = 1
        scaled['train'].update(gpu)
        scaled['datasets']['train'].update(prefetch_mode='cuda', pin_memory=True, persistent_workers=workers > 0)
    return scaled


def parsed(opt, work):
    path = os.path.join(work, opt['name'] + '.yml')
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    o, _ = RunOptions(path, True).to_basicsr(work)
    o['root_path'] = work
    return path, o


def sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def model_step(opt, work, device, iters, train_overrides=None, batch_data=None):
    """Seconds per optimize_parameters on a batch held in host memory (fed every step, as the loop does)."""
    opt = copy.deepcopy(opt)
    opt['train'].update(train_overrides or {})
    _, o = parsed(opt, work)
    model = build_model(o)
    data = batch_data
    if data is None:
        ds = build_dataset(dict(o['datasets']['train'], phase='train', scale=o['scale']))
        items = [ds[i % len(ds)] for i in range(o['datasets']['train']['batch_size_per_gpu'])]
        data = {k: torch.stack([it[k] for it in items]) for k in ('lq', 'gt')}
        if device == 'cuda':
            data = {k: v.pin_memory() for k, v in data.items()}
    for i in range(3):  # warm-up (and compilation)
        model.feed_data(data)
        model.optimize_parameters(i + 1)
    sync(device)
    t0 = time.perf_counter()
    for i in range(iters):
        model.feed_data(data)
        model.optimize_parameters(i + 4)
    sync(device)
    del model
    return (time.perf_counter() - t0) / iters


LOG = re.compile(r'iter:\s*([\d,]+),.*time \(data\): ([\d.]+) \(([\d.]+)\)')


def end_to_end(opt, work, skip):
    """(seconds per iteration, seconds waiting for data) of `basicsr train` after ``skip`` warm-up iterations,
    from BasicSR's running averages (each logged every print_freq iterations)."""
    path, _ = parsed(opt, work)
    exp = os.path.join(work, 'experiments', opt['name'])
    if os.path.isdir(exp):
        import shutil
        shutil.rmtree(exp)
    r = subprocess.run([sys.executable, '-m', 'pfdn_arch.cli', 'train', '-opt', path], cwd=work, capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (ROOT, os.environ.get('PYTHONPATH'))))))
    if r.returncode:
        raise SystemExit(f'basicsr train failed:\n{r.stderr[-3000:]}')
    log = open(glob.glob(os.path.join(exp, 'train_*.log'))[0]).read()
    points = [(int(i.replace(',', '')), float(t), float(d)) for i, t, d in LOG.findall(log)]
    # BasicSR's AvgTimer keeps a running mean (reset after 200): turn it into per-window means
    (i0, t0, d0), (i1, t1, d1) = next(p for p in points if p[0] >= skip), points[-1]
    if i1 > 200:
        raise SystemExit('keep --iters at most 200 (BasicSR resets its timer averages after 200 iterations)')
    n = i1 - i0
    return (t1 * i1 - t0 * i0) / n, (d1 * i1 - d0 * i0) / n


def step_in_child(opt, work, device, steps, threads):
    """The model step timed in a process of its own, as the end-to-end run is: the same conditions for both."""
    path, _ = parsed(opt, work)
    r = subprocess.run([sys.executable, __file__, '--step-child', path, '--device', device, '--steps', str(steps),
                        '--threads', str(threads), '--work', work], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (ROOT, os.environ.get('PYTHONPATH'))))))
    if r.returncode:
        raise SystemExit(f'model step failed:\n{r.stderr[-3000:]}')
    return float(r.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--step-child', help=argparse.SUPPRESS)  # internal: time the model step of this yml, print it
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    p.add_argument('--workers', type=int, default=2, help='DataLoader workers (default: 2)')
    p.add_argument('--seconds', type=float, default=8, help='seconds per data measurement (default: 8)')
    p.add_argument('--iters', type=int, default=120, help='iterations of the end-to-end runs, <= 200 (default: 120)')
    p.add_argument('--steps', type=int, default=20, help='timed model steps (default: 20)')
    p.add_argument('--shape', type=int, nargs=2, metavar=('BATCH', 'LR'),
                   help='model/e2e shape (default: CPU 8 24, the smoke stage 1; CUDA 96 64, stage 1)')
    p.add_argument('--matrix', action='store_true', help='the model step with each option on and off')
    p.add_argument('--work', default=os.path.join(HERE, 'out', 'train_e2e'), help='scratch folder')
    p.add_argument('--photos', default=SUNHAYS, help='source photos (default: ../shared SunHays80)')
    p.add_argument('--threads', type=int, default=2, help='CPU threads for the model (default: 2)')
    a = p.parse_args()
    if a.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('error: --device cuda but CUDA is not available')
    torch.set_num_threads(a.threads)
    if a.step_child:
        print(model_step(read_yml(a.step_child), a.work, a.device, a.steps))
        return
    a.work = os.path.abspath(a.work)
    os.makedirs(a.work, exist_ok=True)
    batch, lr = a.shape or ((96, 64) if a.device == 'cuda' else (8, 24))
    dev_name = torch.cuda.get_device_name() if a.device == 'cuda' else f'CPU, {a.threads} threads'
    t_start = time.time()

    print('1. data', flush=True)
    src, lmdbs = prepare_data(a.work, a.photos)
    n_img = len(os.listdir(src))
    sizes = {fmt: du(lmdbs[fmt][0]) + du(lmdbs[fmt][1]) for fmt in lmdbs}
    rates = {fmt: data_throughput(dataset_opt(fmt, lmdbs[fmt]), a.workers, 16, a.seconds) for fmt in ('png', 'decoded')}
    per_worker = {fmt: r / max(a.workers, 1) for fmt, r in rates.items()}
    speedup = per_worker['decoded'] / per_worker['png']

    print('2. model step', flush=True)
    base = stage_opt(STAGE_FILES[0], 'e2e_new', lr * 4, batch, lmdbs['decoded'], a.device, a.workers, a.iters)
    step_before = step_in_child(base, a.work, a.device, a.steps, a.threads)

    print('3. basicsr train', flush=True)
    skip = min(40, a.iters // 3)
    e2e_new = end_to_end(base, a.work, skip)
    stock = copy.deepcopy(base)
    stock['name'] = 'e2e_stock'
    stock['datasets']['train'].update(dataset_opt('png', lmdbs['png'], lr * 4))
    e2e_stock = end_to_end(stock, a.work, skip)
    # the machine's load drifts: the model step is measured before and after the runs, both in fresh processes
    step_after = step_in_child(base, a.work, a.device, a.steps, a.threads)
    step = (step_before + step_after) / 2
    ratio = e2e_new[0] / step
    drift = abs(step_after - step_before) / min(step_before, step_after)
    trusted = ratio >= 0.95 and drift <= 0.15
    why = (f'the step measured {step_before:.4f} s before and {step_after:.4f} s after the runs ({drift:.0%} apart)'
           if drift > 0.15 else f'the loop ({e2e_new[0]:.4f} s) measured faster than the step it contains '
                                f'({step:.4f} s)')

    print('4. projection', flush=True)
    rows = []
    compile_factor = 1.0
    if a.device == 'cuda' and base['train'].get('compile'):  # one compilation per stage would take minutes
        eager = copy.deepcopy(base)
        eager['train']['compile'] = False
        compile_factor = step / step_in_child(eager, a.work, a.device, a.steps, a.threads)
    for f in STAGE_FILES:
        o = read_yml(os.path.join(ROOT, 'options', f))
        b = o['datasets']['train']['batch_size_per_gpu'] * GPUS_IN_YML
        s = o['datasets']['train']['gt_size']
        if a.device == 'cuda':
            so = stage_opt(f, 'proj_' + o['name'], s, b, lmdbs['decoded'], a.device, 0, 10)
            compiled = bool(so['train'].get('compile'))
            sec = model_step(so, a.work, a.device, max(5, a.steps // 2), {'compile': False})
            sec *= compile_factor if compiled else 1.0
            how = f'measured eager x {compile_factor:.2f} (compiled / eager at stage 1)' if compiled else 'measured'
        else:
            sec = step * (b * (s // 4) ** 2) / (batch * lr ** 2)
            how = 'scaled by LR pixels'
        rows.append((o['name'], o['train']['total_iter'], b, s // 4, sec, how))
    total_h = sum(it * sec * ratio for _, it, _, _, sec, _ in rows) / 3600

    matrix = []
    if a.matrix:
        print('5. option matrix', flush=True)
        combos = [('fp32, eager', dict(amp='none', channels_last=False, compile=False)),
                  ('bf16 + channels_last, eager', dict(amp='bf16', channels_last=True, compile=False)),
                  ('fp32, compiled', dict(amp='none', channels_last=False, compile=True)),
                  ('bf16 + channels_last, compiled', dict(amp='bf16', channels_last=True, compile=True))]
        shapes = [(96, 64, STAGE_FILES[0], combos), (24, 64, STAGE_FILES[0], combos),
                  (32, 240, STAGE_FILES[4], combos[:2] + combos[3:])]
        if a.device == 'cpu':  # the same kinds of shapes, small enough for a CPU
            shapes = [(8, 24, STAGE_FILES[0], combos), (2, 24, STAGE_FILES[0], combos),
                      (1, 60, STAGE_FILES[4], combos[:2] + combos[3:])]
        for b, s, f, todo in shapes:
            for label, kw in todo:
                so = stage_opt(f, 'matrix', s * 4, b, lmdbs['decoded'], a.device, 0, 10)
                sec = model_step(so, a.work, a.device, a.steps, kw)
                matrix.append((f'{b} x LR {s} ({"fine-tune" if f == STAGE_FILES[4] else "stage 1"})', label, sec))
                print(f'   {matrix[-1][0]}, {label}: {sec * 1e3:.1f} ms', flush=True)

    print(f'\n## Training speed, {dev_name} ({time.time() - t_start:.0f} s)\n')
    print(f'Data only: {n_img} photos (short side 960 px), random 256-px crops with flips/rotations, batch 16, '
          f'{a.workers} workers, {a.seconds:.0f} s each\n')
    print('| dataset | storage | disk | samples/s | per worker |\n| --- | --- | --- | --- | --- |')
    print(f"| PairedImageDataset (stock) | PNG LMDB, 960-px sub-images + 240-px LR | {sizes['png'] / 2**20:.0f} MB | "
          f"{rates['png']:.0f} | {per_worker['png']:.1f} |")
    print(f"| PairedCropDataset | decoded LMDB, whole images + LR | {sizes['decoded'] / 2**20:.0f} MB "
          f"({sizes['decoded'] / n_img * 1000 / 2**30:.2f} GB per 1,000 images) | {rates['decoded']:.0f} | "
          f"{per_worker['decoded']:.1f} |")
    print(f'\nModel and loop at batch {batch}, LR {lr} ({dev_name}; options: '
          f"amp {base['train'].get('amp')}, channels_last {base['train'].get('channels_last')}, "
          f"compile {base['train'].get('compile')}; {a.workers} workers):\n")
    print('| what | s / iteration | waiting for data | x model step |\n| --- | --- | --- | --- |')
    print(f'| model step only | {step:.4f} | - | 1.00 |')
    print(f'| basicsr train, PairedCropDataset | {e2e_new[0]:.4f} | {e2e_new[1] / e2e_new[0]:.0%} | {ratio:.2f} |')
    print(f'| basicsr train, stock PairedImageDataset (PNG) | {e2e_stock[0]:.4f} | '
          f'{e2e_stock[1] / e2e_stock[0]:.0%} | {e2e_stock[0] / step:.2f} |')
    print(f'\nProjected schedule on this device (whole batch on one device; model step x {ratio:.2f}):\n')
    print('| stage | iterations | batch | LR | model step (s) | how | hours |\n| --- | --- | --- | --- | --- | --- | --- |')
    for name, it, b, s, sec, how in rows:
        print(f'| {name} | {it:,} | {b} | {s} | {sec:.4f} | {how} | {it * sec * ratio / 3600:.1f} |')
    print(f'| total | | | | | | {total_h:.1f} |')
    if matrix:
        print('\n| shape | options | ms / step |\n| --- | --- | --- |')
        for shape, label, sec in matrix:
            print(f'| {shape} | {label} | {sec * 1e3:.1f} |')
    if trusted:
        print(f'\ndata speedup: {speedup:.1f}x per worker; end-to-end / model step: {ratio:.2f}')
    else:
        print(f'\ndata speedup: {speedup:.1f}x per worker; end-to-end / model step: not reported ({why}: not '
              'measured under the same conditions; rerun on a quieter machine)')


if __name__ == '__main__':
    main()
