"""Efficiency figures as the NTIRE Efficient SR challenge counts them.

- MACs: every Conv2d's multiply-accumulates (output elements x in_channels/groups x kernel area) plus one op per
  LeakyReLU output (the challenge's "FLOPs" column is these MACs);
- activations: the elements of every Conv2d output; conv count: Conv2d modules run;
- runtime: median of N timed forwards after warm-up; peak memory: CUDA's max allocated, or on CPU the growth of
  the process's peak resident set during the timed forwards.

The online training form computes each RRRB with a functional conv that module hooks cannot see, so the
training form is counted in its explicit branch-by-branch computation (its true multi-branch cost).
"""
import copy
import resource
import statistics
import time

import torch
from torch import nn


def count_ops(net, x):
    """Return dict(params, macs, conv_macs, activations, convs) of one forward of ``net`` on ``x``."""
    stats = {'conv_macs': 0, 'act_ops': 0, 'activations': 0, 'convs': 0}

    def conv_hook(m, _inp, out):
        k = m.kernel_size[0] * m.kernel_size[1]
        stats['conv_macs'] += out.numel() * (m.in_channels // m.groups) * k
        stats['activations'] += out.numel()
        stats['convs'] += 1

    def act_hook(_m, _inp, out):
        stats['act_ops'] += out.numel()

    handles = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.LeakyReLU):
            handles.append(m.register_forward_hook(act_hook))
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return {'params': sum(p.numel() for p in net.parameters()), 'macs': stats['conv_macs'] + stats['act_ops'],
            'conv_macs': stats['conv_macs'], 'activations': stats['activations'], 'convs': stats['convs']}


def _peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def time_forward(fn, x, runs=10, warmup=3):
    """(median seconds, peak memory bytes) of ``fn(x)`` under no_grad."""
    cuda = x.is_cuda
    with torch.inference_mode():
        for _ in range(warmup):
            fn(x)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            base = _peak_rss_bytes()
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn(x)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() - base if cuda else max(_peak_rss_bytes() - base, 0)
    return statistics.median(times), peak


def profile(net, size=(256, 256), device='cpu', runs=10, warmup=3, timing=True):
    """All figures of one network form at LR ``size``."""
    net = net.eval().to(device)
    if not getattr(net, 'deploy', True):
        net = copy.deepcopy(net)
        for m in net.modules():
            if hasattr(m, 'mode'):
                m.mode = 'explicit'
    x = torch.rand(1, net.num_in_ch if hasattr(net, 'num_in_ch') else 3, *size, device=device)
    out = count_ops(net, x)
    if timing:
        out['seconds'], out['peak_bytes'] = time_forward(net, x, runs, warmup)
    return out
