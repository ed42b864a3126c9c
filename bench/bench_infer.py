"""Every inference backend and precision available here against the plain forward of the released PFDN.

    python bench/bench_infer.py [--rounds 7] [--threads 2] [--device cpu|cuda] [--sizes 256x256,510x339] [--int8]

For LR 256x256 and 339x510 (510 wide), real photo crops (../shared Urban100 img_004; built-in photos without
../shared): the median ms of each backend/precision over alternating rounds (every variant once per round, so
they share the machine's load), the ratio to the plain fp32 forward (on CUDA with TF32 off, as the targets are
stated), max |diff| against it on the same image, and Set5 x4 PSNR (Y, crop 4). --int8 adds OpenVINO int8
(NNCF post-training quantization calibrated on the built-in photos; needs `pip install nncf`). The last line reads
`best fp32 backend on <device>: <name> <ratio>x plain` (the ratio is the larger of the sizes').
"""
import argparse
import os
import statistics
import sys
import time

import cv2
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))

import pfdn_arch  # noqa: E402,F401
from pfdn_arch.deploy.backends import BACKENDS, DTYPES, make_runner, resolve  # noqa: E402
from pfdn_arch.files.checkpoints import build_pfdn_from_checkpoint  # noqa: E402
from pfdn_arch.recipe.protocol import evaluate_folder  # noqa: E402

SHARED = os.path.join(HERE, '..', '..', 'shared')


def real_input(h, w):
    """A real photo crop of h x w (Urban100 img_004 is 1024 x 681: room for 510 x 339)."""
    path = os.path.join(SHARED, 'data', 'benchmark', 'Urban100', 'HR', 'img_004.png')
    if os.path.isfile(path):
        img = cv2.imread(path)
        img = cv2.resize(img, (max(w, img.shape[1] // 2), max(h, img.shape[0] // 2)), interpolation=cv2.INTER_AREA)
    else:
        from pfdn_arch.data.samples import sample_image
        img = cv2.resize(sample_image('retina.jpg'), (max(w, 706), max(h, 706)), interpolation=cv2.INTER_AREA)
    crop = img[:h, :w, ::-1].astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None]


def variants(net, device, threads, int8):
    """name -> runner for every backend and precision that runs natively here (no fallbacks)."""
    out = {}
    for backend in BACKENDS[1:]:
        for dtype in DTYPES:
            got = resolve(backend, device, dtype, warn=lambda m: None)
            if got != (backend, torch.device(device), dtype):
                continue
            out[f'{backend} {dtype}'] = make_runner(net, backend, device, dtype, threads=threads)
    if int8:
        out['openvino int8'] = openvino_int8(net, threads)
    return out


def openvino_int8(net, threads):
    """OpenVINO int8 by NNCF post-training quantization, calibrated on LR crops of the built-in photos."""
    import nncf
    import openvino as ov

    from pfdn_arch.deploy.backends import OpenVINORunner
    from pfdn_arch.data.samples import SAMPLE_FILES, sample_image
    from pfdn_arch.recipe.protocol import bicubic_lr

    runner = OpenVINORunner(net, torch.device('cpu'), 'fp32', threads)
    calib = []
    for name in SAMPLE_FILES:
        lr = bicubic_lr(sample_image(name), 4)[1][:64, :64, ::-1].astype(np.float32) / 255
        calib.append(np.ascontiguousarray(lr.transpose(2, 0, 1))[None])
    model = runner.model.clone()
    model.reshape([1, 3, 64, 64])
    quantized = nncf.quantize(model, nncf.Dataset(calib), subset_size=len(calib))
    quantized.reshape([-1, 3, -1, -1])
    runner.model = quantized
    runner.dtype = 'int8'
    assert isinstance(runner.model, ov.Model)
    return runner


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--rounds', type=int, default=7)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--device', default='cpu')
    p.add_argument('--sizes', default='256x256,510x339', help='LR sizes WxH, comma-separated')
    p.add_argument('--weights', default=os.path.join(SHARED, 'weights', 'team08_PFDN.pth'))
    p.add_argument('--set5', default=os.path.join(SHARED, 'data', 'benchmark', 'Set5', 'HR'))
    p.add_argument('--int8', action='store_true', help='also OpenVINO int8 (NNCF)')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    cuda = dev.type == 'cuda'
    net, _ = build_pfdn_from_checkpoint(a.weights)
    net = net.eval()
    runners = variants(net, a.device, a.threads, a.int8)
    plain = runners['torch fp32']

    def run_plain(x):
        if cuda:  # the stated baseline: fp32 convolutions without TF32
            tf32, torch.backends.cudnn.allow_tf32 = torch.backends.cudnn.allow_tf32, False
            try:
                return plain(x)
            finally:
                torch.backends.cudnn.allow_tf32 = tf32
        return plain(x)

    fns = {'plain (torch fp32)': run_plain, **{k: v for k, v in runners.items() if k != 'torch fp32'}}

    def timed(fn, x):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(x)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    rows, t_start = [], time.time()
    for size in a.sizes.split(','):
        w, h = (int(v) for v in size.split('x'))
        x = real_input(h, w).to(dev)
        with torch.inference_mode():
            ref = run_plain(x).float().cpu()
            diffs = {}
            for k, f in fns.items():  # warm-up (compiles, per-shape models) and the difference on a real image
                f(x)
                diffs[k] = (f(x).float().cpu() - ref).abs().max().item()
            times = {k: [] for k in fns}
            for _ in range(a.rounds):
                for k, f in fns.items():
                    times[k].append(timed(f, x))
        base = statistics.median(times['plain (torch fp32)'])
        for k in fns:
            med = statistics.median(times[k])
            rows.append((f'{w}x{h}', k, med * 1e3, med / base, diffs[k]))
        print(f'{w}x{h} done ({time.time() - t_start:.0f} s)', flush=True)

    psnr = {}
    if os.path.isdir(a.set5):
        for k, f in fns.items():
            psnr[k] = evaluate_folder(lambda t, f=f: f(t.to(dev)).float().cpu(), a.set5)['psnr']

    cpu_name = ''
    if not cuda:
        import platform
        cpu_name = next((line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo') if line.startswith(
            'model name')), platform.processor()) if os.path.exists('/proc/cpuinfo') else platform.processor()
    where = torch.cuda.get_device_name(dev) if cuda else f'{cpu_name}, {a.threads} threads'
    print(f'\nreleased PFDN x4, {where}, median of {a.rounds} alternating rounds\n')
    print('| LR size | backend | ms | x plain | max abs diff vs plain | Set5 PSNR (change) |\n'
          '| --- | --- | --- | --- | --- | --- |')
    for size, k, ms, ratio, diff in rows:
        change = f"{psnr[k]:.4f} ({psnr[k] - psnr['plain (torch fp32)']:+.4f})" if k in psnr else '-'
        print(f'| {size} | {k} | {ms:.2f} | {ratio:.2f} | {diff:.1e} | {change} |')
    fp32 = {}
    for size, k, ms, ratio, diff in rows:
        if k.endswith('fp32'):
            fp32[k] = max(fp32.get(k, 0), ratio)
    best = min(fp32, key=fp32.get)
    print(f"\nbest fp32 backend on {'cuda' if cuda else 'cpu'}: {best.split()[0]} {fp32[best]:.2f}x plain")


if __name__ == '__main__':
    main()
