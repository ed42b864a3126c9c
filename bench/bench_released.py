"""Released weights on the benchmark sets (default: Set5 and Urban100 from ../shared), with bicubic beside.

    python bench/bench_released.py [--sets Set5 Urban100] [--root ../shared/data/benchmark] [--weights W]

Protocol: LR by BasicSR's MATLAB-style imresize (rounded to 8 bits), PSNR/SSIM on Y, crop 4.
Published: Set5 32.04 / 0.8932, Urban100 25.97 / 0.7810.
"""
import argparse
import os
import time

import torch

import pfdn_arch  # noqa: F401
from pfdn_arch.files.checkpoints import build_from_checkpoint
from pfdn_arch.evaluation.protocol import evaluate_folder

PUBLISHED = {'Set5': (32.04, 0.8932), 'Urban100': (25.97, 0.7810)}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sets', nargs='+', default=['Set5', 'Urban100'])
    p.add_argument('--root', default=os.path.join(here, '..', '..', 'shared', 'data', 'benchmark'))
    p.add_argument('--weights', default=os.path.join(here, '..', '..', 'shared', 'weights', 'team08_PFDN.pth'))
    p.add_argument('--threads', type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    net, _ = build_from_checkpoint(a.weights)
    net.eval()
    rows = []
    for name in a.sets:
        hr = os.path.join(a.root, name, 'HR')
        t0 = time.time()
        sr = evaluate_folder(net, hr)
        bic = evaluate_folder(None, hr, bicubic=True)
        pub = PUBLISHED.get(name)
        rows.append((name, sr, bic, pub))
        print(f'{name}: {sr["n"]} images in {time.time() - t0:.0f} s', flush=True)
    print('\n| set | PFDN PSNR / SSIM | published | bicubic |\n| --- | --- | --- | --- |')
    for name, sr, bic, pub in rows:
        pub_s = f'{pub[0]:.2f} / {pub[1]:.4f}' if pub else '-'
        print(f"| {name} | {sr['psnr']:.2f} / {sr['ssim']:.4f} | {pub_s} | {bic['psnr']:.2f} / {bic['ssim']:.4f} |")


if __name__ == '__main__':
    main()
