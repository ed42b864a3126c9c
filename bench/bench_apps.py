"""The released PFDN as the apps run it, side by side on this machine: NCNN on the CPU (Upscayl's runtime, fp16 and
fp32 weights) and on Vulkan (Mesa's lavapipe where there is no GPU), beside OpenVINO and the plain PyTorch forward.

    python bench/bench_apps.py [--rounds 7] [--threads 2] [--size 256x256]

Median ms per LR image over alternating rounds (each runner once per round, so they share the machine's load), the
ratio to the plain forward, and max |diff| against it on a real photo crop. Needs pip install 'pfdn[ncnn,fast]' and,
for Vulkan, a Vulkan device (Debian: mesa-vulkan-drivers gives lavapipe).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))

import pfdn_arch  # noqa: E402,F401
from bench_infer import real_input  # noqa: E402
from pfdn_arch.deploy.export.ncnn import export_ncnn  # noqa: E402
from pfdn_arch.deploy.runtime.build import build_runner  # noqa: E402
from pfdn_arch.deploy.runtime.ncnn_runner import NcnnRunner  # noqa: E402
from pfdn_arch.files.checkpoints import build_from_checkpoint  # noqa: E402

WEIGHTS = os.path.join(HERE, '..', '..', 'shared', 'weights', 'team08_PFDN.pth')


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rounds', type=int, default=7)
    p.add_argument('--threads', type=int, default=torch.get_num_threads())
    p.add_argument('--size', default='256x256', help='LR height x width')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    h, w = (int(v) for v in a.size.split('x'))
    net, _ = build_from_checkpoint(WEIGHTS)
    net.eval()
    x = real_input(h, w)
    with tempfile.TemporaryDirectory() as tmp:
        runners = {'torch fp32 (plain forward)': build_runner(net, 'torch', warn=lambda m: None),
                   'openvino fp32': build_runner(net, 'openvino', warn=lambda m: None, threads=a.threads)}
        for label, fp16 in (('fp16', True), ('fp32', False)):
            param, _ = export_ncnn(net, tmp, f'4x-PFDN-{label}', fp16=fp16)
            runners[f'ncnn cpu ({label} weights)'] = NcnnRunner(param, a.threads)
            try:
                runner = NcnnRunner(param, a.threads, gpu=0)
                runners[f'ncnn {runner.where} ({label} weights)'] = runner
            except Exception as err:  # no Vulkan device: said, and the rest measured
                print(f'note: ncnn on Vulkan not measured ({str(err).splitlines()[0]})')
        with torch.no_grad():
            ref = net(x)
        times = {k: [] for k in runners}
        diffs = {}
        for name, run in runners.items():  # warm-up: pipelines, weight layouts
            diffs[name] = (run(x) - ref).abs().max().item()
        for _ in range(a.rounds):
            for name, run in runners.items():
                t0 = time.perf_counter()
                run(x)
                times[name].append(time.perf_counter() - t0)
    base = statistics.median(times['torch fp32 (plain forward)'])
    cpu = open('/proc/cpuinfo').read().split('model name')[1].split('\n')[0].strip(' :\t') \
        if os.path.exists('/proc/cpuinfo') else 'this CPU'
    print(f'LR {h}x{w}, {a.threads} threads, {cpu}, median of {a.rounds} rounds')
    print('| runtime | ms | x plain | max abs diff |\n| --- | --- | --- | --- |')
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f'| {name} | {m * 1000:.0f} | {m / base:.2f} | {diffs[name]:.1e} |')


if __name__ == '__main__':
    main()
