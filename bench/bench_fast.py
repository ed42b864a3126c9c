"""Plain eager forward vs the fast inference path of the released PFDN (issue: fastest deployed PFDN).

    python bench/bench_fast.py [--rounds 7] [--threads 2] [--device cpu] [--compile] [--set5 DIR]

Inputs are real photos (crops of ../shared benchmark images), not noise: uniform noise is out of distribution
and even fp64 vs fp32 differ by ~7e-4 on it. Each round times plain and every fast variant in turn (alternating,
same machine load); the table gives medians, ratios to plain, and max |fast - plain| on the same input.
bf16 (CPU) / fp16 (CUDA) also report their Set5 PSNR change against fp32.
"""
import argparse
import os
import statistics
import time

import cv2
import numpy as np
import torch

import pfdn_arch  # noqa: F401
from pfdn_arch.checkpoint import build_pfdn_from_checkpoint
from pfdn_arch.evaluate import evaluate_folder
from pfdn_arch.fast import compile_fast, fast_pfdn

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, '..', '..', 'shared')


def real_input(h, w):
    """A real photo crop of h x w (Urban100 img_004 is 1024 x 681: room for 510 x 339)."""
    img = cv2.imread(os.path.join(SHARED, 'data', 'benchmark', 'Urban100', 'HR', 'img_004.png'))
    img = cv2.resize(img, (max(w, img.shape[1] // 2), max(h, img.shape[0] // 2)), interpolation=cv2.INTER_AREA)
    crop = img[:h, :w, ::-1].astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None]


def timed(fn, x, device):
    if device.type == 'cuda':
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn(x)
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--rounds', type=int, default=7)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--device', default='cpu')
    p.add_argument('--compile', action='store_true', help='also torch.compile the fast path (fp32)')
    p.add_argument('--weights', default=os.path.join(SHARED, 'weights', 'team08_PFDN.pth'))
    p.add_argument('--set5', default=os.path.join(SHARED, 'data', 'benchmark', 'Set5', 'HR'))
    p.add_argument('--sizes', default='256x256,510x339', help='LR sizes WxH, comma-separated')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    net, _ = build_pfdn_from_checkpoint(a.weights)
    net = net.eval().to(dev)
    half = torch.float16 if dev.type == 'cuda' else torch.bfloat16
    half_name = 'fp16' if dev.type == 'cuda' else 'bf16'
    variants = {'fast fp32': fast_pfdn(net, device=dev), f'fast {half_name}': fast_pfdn(net, half, dev)}

    def plain(x):
        with torch.inference_mode():
            return net(x)

    rows = []
    for size in a.sizes.split(','):
        w, h = (int(v) for v in size.split('x'))
        x = real_input(h, w).to(dev)
        fns = {'plain fp32': plain, **variants}
        if a.compile:
            t0 = time.perf_counter()
            compiled = compile_fast(variants['fast fp32'])
            compiled(x)
            print(f'{w}x{h}: torch.compile of the fast path took {time.perf_counter() - t0:.1f} s (first call)')
            fns['fast fp32 + compile'] = compiled
        with torch.inference_mode():
            ref = net(x).float()
            diffs = {k: (f(x).float() - ref).abs().max().item() for k, f in fns.items()}
            for f in fns.values():  # warm-up
                f(x)
            times = {k: [] for k in fns}
            for _ in range(a.rounds):
                for k, f in fns.items():
                    times[k].append(timed(f, x, dev))
        base = statistics.median(times['plain fp32'])
        for k in fns:
            med = statistics.median(times[k])
            rows.append((f'{w}x{h}', k, med * 1e3, med / base, diffs[k]))
        print(f'{w}x{h} done', flush=True)

    print(f'\nreleased PFDN x4, {a.device}' + (f', {a.threads} threads' if dev.type == 'cpu' else '')
          + f', median of {a.rounds} alternating rounds\n')
    print('| LR size | forward | ms | x plain | max abs diff vs plain |\n| --- | --- | --- | --- | --- |')
    for size, k, ms, ratio, diff in rows:
        print(f'| {size} | {k} | {ms:.1f} | {ratio:.2f} | {diff:.2e} |')
    if os.path.isdir(a.set5):
        fp32 = evaluate_folder(lambda t: plain(t.to(dev)).float().cpu(), a.set5)
        low = evaluate_folder(lambda t: variants[f'fast {half_name}'](t.to(dev)).float().cpu(), a.set5)
        fast32 = evaluate_folder(lambda t: variants['fast fp32'](t.to(dev)).float().cpu(), a.set5)
        print(f"\nSet5 x4 PSNR: plain fp32 {fp32['psnr']:.4f} dB, fast fp32 {fast32['psnr']:.4f} dB, "
              f"fast {half_name} {low['psnr']:.4f} dB (change {low['psnr'] - fp32['psnr']:+.4f} dB)")


if __name__ == '__main__':
    main()
