"""Training-step speed of the three PFDN forms at stage-1 shape (the online re-parameterization against the others).

    python bench/bench_train_step.py [--batch 16] [--lr-size 64] [--rounds 5] [--threads 2]

Each round times one fwd+bwd+Adam step of every form in turn (explicit RRRB branches, online recomposed RRRB,
deployed plain net), so the ratios are measured side by side under the same machine load. Prints a Markdown
table of median step times and the ratios to the deployed form.
"""
import argparse
import statistics
import time

import torch

import pfdn_arch  # noqa: F401
from pfdn_arch import PFDN


def step_fn(net, x, y):
    opt = torch.optim.Adam(net.parameters(), 5e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = (net(x) - y).abs().mean()
        loss.backward()
        opt.step()
    return step


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--lr-size', type=int, default=64)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--device', default='cpu')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    x = torch.rand(a.batch, 3, a.lr_size, a.lr_size, device=dev)
    y = torch.rand(a.batch, 3, a.lr_size * 4, a.lr_size * 4, device=dev)
    forms = {'explicit training form': PFDN(rrrb_mode='explicit'), 'online training form': PFDN(rrrb_mode='online'),
             'deployed form': PFDN(deploy=True)}
    steps = {name: step_fn(net.to(dev), x, y) for name, net in forms.items()}
    times = {name: [] for name in forms}
    for name, step in steps.items():  # warm-up
        step()
    for r in range(a.rounds):
        for name, step in steps.items():
            if dev.type == 'cuda':
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            step()
            if dev.type == 'cuda':
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
        print(f'round {r + 1}/{a.rounds} done', flush=True)
    base = statistics.median(times['deployed form'])
    print(f'\nfwd+bwd+Adam, batch {a.batch}, LR {a.lr_size}x{a.lr_size}, {a.device}, {a.threads} threads, '
          f'median of {a.rounds} alternating rounds\n')
    print('| form | params | s / step | x deployed |\n| --- | --- | --- | --- |')
    for name, net in forms.items():
        med = statistics.median(times[name])
        print(f'| {name} | {sum(q.numel() for q in net.parameters()):,} | {med:.3f} | {med / base:.2f} |')


if __name__ == '__main__':
    main()
