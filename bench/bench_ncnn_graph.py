"""What the portable NCNN graph costs: the released PFDN's NCNN files as pnnx writes them (Pooling, fused sigmoid)
against the files ``basicsr export --ncnn`` writes (``ncnn_graph.portable``: crops and maxima, strided dilated
convolutions, the sigmoid from BinaryOps), side by side in PyPI's ncnn on the CPU.

    python bench/bench_ncnn_graph.py [--rounds 15] [--threads 2] [--size 256x256]

Median, min and max ms per LR image over alternating rounds (each graph once per round, so both share the machine's
load), the ratio, and the largest difference between the two graphs' results.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))

import pfdn_arch  # noqa: E402,F401
from bench_infer import real_input  # noqa: E402
from pfdn_arch.deploy.export.ncnn import pnnx_files  # noqa: E402
from pfdn_arch.deploy.export.ncnn_graph import portable  # noqa: E402
from pfdn_arch.deploy.runtime.ncnn_runner import NcnnRunner  # noqa: E402
from pfdn_arch.files.checkpoints import build_from_checkpoint  # noqa: E402

WEIGHTS = os.path.join(HERE, '..', '..', 'shared', 'weights', 'team08_PFDN.pth')


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rounds', type=int, default=15)
    p.add_argument('--threads', type=int, default=torch.get_num_threads())
    p.add_argument('--size', default='256x256', help='LR height x width')
    a = p.parse_args()
    h, w = (int(v) for v in a.size.split('x'))
    net, _ = build_from_checkpoint(WEIGHTS)
    raw, weights = pnnx_files(net.eval())
    x = real_input(h, w)
    with tempfile.TemporaryDirectory() as tmp:
        runners = {}
        for name, text in (('pnnx graph (Pooling, Sigmoid)', raw.replace('in0', 'data').replace('out0', 'output')),
                           ('portable graph (exported)', portable(raw))):
            path = os.path.join(tmp, f'{len(runners)}.param')
            with open(path, 'w') as f:
                f.write(text)
            with open(path[:-6] + '.bin', 'wb') as f:
                f.write(weights)
            runners[name] = NcnnRunner(path, a.threads)
        results = {name: run(x) for name, run in runners.items()}  # and a warm-up
        times = {name: [] for name in runners}
        for _ in range(a.rounds):
            for name, run in runners.items():
                start = time.perf_counter()
                run(x)
                times[name].append(1000 * (time.perf_counter() - start))
    first = next(iter(times))
    print(f'NCNN {__import__("ncnn").__version__} on the CPU, {a.threads} threads, LR {h}x{w}, fp16 weights, '
          f'{a.rounds} rounds')
    print('| graph | median ms | min | max | x pnnx graph |')
    print('|---|---|---|---|---|')
    for name, t in times.items():
        ratio = statistics.median(t) / statistics.median(times[first])
        print(f'| {name} | {statistics.median(t):.1f} | {min(t):.1f} | {max(t):.1f} | {ratio:.3f} |')
    a_, b_ = results.values()
    print(f'max |difference| between the two: {np.abs(np.asarray(a_) - np.asarray(b_)).max():.2e}')


if __name__ == '__main__':
    main()
