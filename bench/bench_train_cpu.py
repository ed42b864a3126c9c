"""A CPU-scale run of the PFDN recipe on ../shared/data/train/SunHays80, with and without the NCC loss.

    python bench/bench_train_cpu.py [--iters 4000 600 300] [--work bench/out/train_cpu]

Stages, derived from the real option files by `basicsr schedule`'s scaling (same losses and hand-offs):
  1. options/train_pfdn_x4.yml      training form (RRRB), L1, Adam 5e-4 with the same relative milestones
  2. options/train_pfdn_x4_lr180.yml reparameterized at start, deployed form, L1, 2e-4; NCC on the four block
                                     outputs against the stage-1 net as teacher (run A) or no NCC (run B)
  3. options/finetune_pfdn_x4_lr240.yml deployed form, L2, 1e-5
Reduced sizes: LR patches 32 / 48 / 64, batch 16 / 8 / 8, all on the CPU through `basicsr train`. Stage 1 is
shared by both runs. Prints Set5 x4 PSNR/SSIM (Y, crop 4) after each stage next to bicubic (28.43 dB).
"""
import argparse
import os
import sys
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))

import pfdn_arch  # noqa: E402,F401
from pfdn_arch.data import preparation as prep  # noqa: E402
from pfdn_arch.files.checkpoints import build_from_checkpoint  # noqa: E402
from pfdn_arch.layout.experiment import Experiment  # noqa: E402
from pfdn_arch.checks.options import read_yml  # noqa: E402
from pfdn_arch.evaluation.protocol import evaluate_folder  # noqa: E402
from pfdn_arch.schedule.runner import Schedule  # noqa: E402
from pfdn_arch.schedule.stages import scaled_stage  # noqa: E402

SHARED = os.path.join(HERE, '..', '..', 'shared', 'data')


def prepare_data(work):
    """256-px HR crops (64-px LR) of SunHays80 as paired LMDBs, and Set5 in the benchmark layout."""
    data = os.path.join(work, 'data')
    gt, lq = os.path.join(data, 'sunhays_HR_sub256.lmdb'), os.path.join(data, 'sunhays_LR_X4_sub64.lmdb')
    if not (os.path.isdir(gt) and os.path.isdir(lq)):
        prep.extract_subimages(os.path.join(SHARED, 'train', 'SunHays80', 'HR'), os.path.join(data, 'sub'), 256, 192)
        prep.make_lr(os.path.join(data, 'sub'), os.path.join(data, 'sub_lr'), 4)
        prep.make_paired_lmdb(os.path.join(data, 'sub'), os.path.join(data, 'sub_lr'), gt, lq)
    val = prep.prepare_benchmark(os.path.join(SHARED, 'benchmark', 'Set5', 'HR'), 'Set5',
                                 root=os.path.join(data, 'benchmark'))
    return gt, lq, val


def write(opt, work):
    path = os.path.join(work, 'options', opt['name'] + '.yml')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--iters', type=int, nargs=3, default=[4000, 600, 300], metavar=('S1', 'S2', 'S3'))
    p.add_argument('--work', default=os.path.join(HERE, 'out', 'train_cpu'))
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    os.chdir(a.work)  # experiments/ go here
    t_start = time.time()
    data = prepare_data('.')
    set5 = os.path.join(data[2], 'HR')
    bicubic = evaluate_folder(None, set5, bicubic=True)
    s1, s2, s3 = (read_yml(os.path.join(HERE, '..', 'options', f)) for f in
                  ('train_pfdn_x4.yml', 'train_pfdn_x4_lr180.yml', 'finetune_pfdn_x4_lr240.yml'))
    latest = 'experiments/{}/models/net_g_latest.pth'
    plan = [('shared', scaled_stage(s1, 'cpu_s1_lr32', 128, a.iters[0], 16, data))]
    for run, ncc in (('A', True), ('B', False)):
        stage2 = scaled_stage(s2, f'cpu_{run}_s2_reparam_lr48', 192, a.iters[1], 8, data)
        stage2['path']['pretrain_network_g'] = latest.format('cpu_s1_lr32')
        if ncc:
            stage2['path']['pretrain_network_t'] = latest.format('cpu_s1_lr32')
        else:
            stage2.pop('network_t')
            stage2['path'].pop('pretrain_network_t')
            stage2['train'].pop('ncc_opt')
        stage3 = scaled_stage(s3, f'cpu_{run}_s3_finetune_lr64', 256, a.iters[2], 8, data)
        stage3['path']['pretrain_network_g'] = latest.format(stage2['name'])
        plan += [(run, stage2), (run, stage3)]
    rows = []
    for run, opt in plan:
        t0 = time.time()
        exp = Experiment(opt['name'])
        if not exp.finished():
            print(f"[{time.time() - t_start:5.0f} s] {opt['name']}: {opt['train']['total_iter']} iters", flush=True)
            Schedule([], 'experiments/cpu_schedule_logs').run_stage(write(opt, '.'), exp, opt['train']['total_iter'],
                                                                  [], False, opt)
        net, _ = build_from_checkpoint(f"experiments/{opt['name']}/models/net_g_deploy_latest.pth")
        r = evaluate_folder(net.eval(), set5)
        rows.append((run, opt['name'], opt['train']['total_iter'], time.time() - t0, r))
        print(f"    Set5 {r['psnr']:.2f} dB ({r['psnr'] - bicubic['psnr']:+.2f} vs bicubic)", flush=True)
    print(f'\nSunHays80 (80 photos) -> 256-px crops; CPU; total {time.time() - t_start:.0f} s\n')
    print('| run | stage | iters | s | Set5 PSNR | Set5 SSIM | vs bicubic |\n| --- | --- | --- | --- | --- | --- | --- |')
    print(f"| - | bicubic | - | - | {bicubic['psnr']:.2f} | {bicubic['ssim']:.4f} | - |")
    for run, name, iters, secs, r in rows:
        label = {'shared': 'A and B', 'A': 'A (NCC on)', 'B': 'B (NCC off)'}[run]
        print(f"| {label} | {name} | {iters} | {secs:.0f} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
              f"{r['psnr'] - bicubic['psnr']:+.2f} |")


if __name__ == '__main__':
    main()
