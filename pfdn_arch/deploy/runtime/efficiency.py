"""Efficiency figures as the NTIRE Efficient SR challenge counts them.

- MACs: every Conv2d's multiply-accumulates (output elements x in_channels/groups x kernel area) plus one op per
  LeakyReLU output (the challenge's "FLOPs" column is these MACs);
- activations: the elements of every Conv2d output; conv count: Conv2d modules run;
- runtime: median of N timed forwards after warm-up, on any inference backend; peak memory: CUDA's max allocated
  during the timed forwards, or on CPU the growth of the resident set's high-water mark over one forward,
  measured in a child process (PyTorch has no CPU allocator statistics);
- ``ntire_runtime``: the runtime as the NTIRE Efficient SR challenge's script measures it (fp32, cuDNN benchmark
  off, no warm-up, CUDA events around each forward, the mean over a folder of LR images, peak memory by
  ``max_memory_allocated``), to put beside the challenge tables.

The online training form computes each RRRB with a functional conv that module hooks cannot see, so the
training form is counted in its explicit branch-by-branch computation (its true multi-branch cost).
"""
import copy
import ctypes
import multiprocessing
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ...archs import spec_named
from .choose import make_runner


def count_ops(net: nn.Module, x: torch.Tensor) -> Dict[str, Any]:
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


def time_forward(fn: Callable[[Any], Any], x: Any, runs: int = 10, warmup: int = 3) -> Tuple[float, Optional[int]]:
    """(median seconds, CUDA peak bytes or None on CPU) of ``fn(x)`` under inference mode."""
    cuda = x.is_cuda
    with torch.inference_mode():
        for _ in range(warmup):
            fn(x)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn(x)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    return statistics.median(times), (torch.cuda.max_memory_allocated() - base if cuda else None)


def cpu_peak_bytes(net: nn.Module, size: Tuple[int, int], backend: str = 'torch', dtype: str = 'fp32',
                   threads: Optional[int] = None) -> Optional[int]:
    """Peak resident-memory growth of one CPU forward of ``net`` at LR ``size``, measured in a fresh child process
    so that nothing changes in this one (the measurement needs glibc's malloc settings changed). The training form
    runs branch by branch. None where Linux's /proc is not available."""
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    options = dict(upscale=net.upscale, num_in_ch=net.num_in_ch, deploy=net.deploy)
    with multiprocessing.get_context('spawn').Pool(1) as pool:
        return pool.apply(_child_peak_bytes, (state, options, tuple(size), backend, dtype,
                                              threads or torch.get_num_threads()))


def _child_peak_bytes(state, options, size, backend, dtype, threads):
    torch.set_num_threads(threads)
    net = spec_named('PFDN').build(state, **options)
    net = measured_form(net.eval())
    if net.deploy:
        net = make_runner(net, backend, 'cpu', dtype, warn=lambda m: None)
    x = torch.rand(1, options['num_in_ch'], *size)
    try:
        with torch.inference_mode():
            net(x)  # warm-up: caches, compiled models, weight layouts
        _release_freed_memory()
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset VmHWM to the current RSS
        base = _proc_status_bytes('VmRSS')
        with torch.inference_mode():
            net(x)
        return max(_proc_status_bytes('VmHWM') - base, 0)
    except OSError:
        return None


def _proc_status_bytes(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) * 1024
    raise OSError(key)


def _release_freed_memory():
    """glibc keeps freed blocks (and raises its mmap threshold after big frees), which hides later growth: fix
    the threshold so tensors are mmapped and returned on free, and trim the heap. Only ever called in the child
    process of ``cpu_peak_bytes``."""
    try:
        libc = ctypes.CDLL('libc.so.6')
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measured_form(net: nn.Module) -> nn.Module:
    """The training form is measured branch by branch (a copy in 'explicit' mode); the deployed form as it is."""
    if getattr(net, 'deploy', True):
        return net
    net = copy.deepcopy(net)
    for m in net.modules():
        if hasattr(m, 'mode'):
            setattr(m, 'mode', 'explicit')  # an RRRB's computation; the network's attribute, not a submodule
    return net


def profile(net: nn.Module, size: Tuple[int, int] = (256, 256), device: Any = 'cpu', runs: int = 10, warmup: int = 3,
            timing: bool = True) -> Dict[str, Any]:
    """Counts of one network form at LR ``size``, and its median runtime (and CUDA peak memory) in torch."""
    net = measured_form(net.eval().to(device))
    x = torch.rand(1, int(getattr(net, 'num_in_ch', 3)), *size, device=device)
    out = count_ops(net, x)
    if timing:
        out['seconds'], out['peak_bytes'] = time_forward(net, x, runs, warmup)
    return out


def ntire_runtime(net: nn.Module, images: List[torch.Tensor], device: Any = 'cpu') -> Tuple[float, Optional[float]]:
    """(mean ms per image, peak MB or None) the NTIRE Efficient SR way: plain fp32 forward, cuDNN benchmark off,
    no warm-up, CUDA events around each forward (a wall clock on the CPU), mean over ``images`` (1 x 3 x h x w
    tensors), peak memory by ``torch.cuda.max_memory_allocated``. The cuDNN setting is restored afterwards."""
    device = torch.device(device)
    net = net.eval().to(device, torch.float32)
    cuda = device.type == 'cuda'
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    times: List[float] = []
    try:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        with torch.no_grad():
            for x in images:
                x = x.to(device)
                if cuda:
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    net(x)
                    end.record()
                    torch.cuda.synchronize(device)
                    times.append(start.elapsed_time(end))
                else:
                    t0 = time.perf_counter()
                    net(x)
                    times.append((time.perf_counter() - t0) * 1e3)
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
    finally:
        torch.backends.cudnn.benchmark = benchmark
    return statistics.mean(times), peak


def folder_runtime(runner: Callable[[Any], Any], images: List[torch.Tensor]) -> float:
    """Mean ms per image of a backend runner over ``images`` after one untimed pass (compiles, caches)."""
    for x in images:
        runner(x)
    times = []
    for x in images:
        t0 = time.perf_counter()
        out = runner(x)
        if out.is_cuda:
            torch.cuda.synchronize(out.device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.mean(times)
