"""``basicsr profile``: parameters, MACs, activations, conv count, runtime and peak memory of PFDN; or, with
``--protocol ntire``, the runtime the way the NTIRE Efficient SR challenge measures it, beside ``--backend``'s."""
from __future__ import annotations

import argparse
import sys
from typing import Any, List, Optional, TYPE_CHECKING, Tuple

from ..errors import DataError, OptionsError
from . import add_command, whole

if TYPE_CHECKING:  # hints only (the heavy modules load where they are used)
    import torch
    from torch import nn

    from ..deploy.runtime.base import Runner


def add_parser(sub: 'argparse._SubParsersAction') -> argparse.ArgumentParser:
    p = add_command(sub, 'profile', 'parameters, MACs, activations, convs, runtime, peak memory',
                    'Efficiency figures of the training and deployed forms as the NTIRE Efficient SR challenge counts '
                    'them (pfdn_arch/deploy/runtime/efficiency.py), the deployed form timed on --backend; or, with '
                    "--protocol ntire, the runtime as the challenge's script measures it, beside --backend's on the "
                    'same folder.')
    p.add_argument('--weights', help='a PFDN checkpoint (either form); None: the released x4 architecture')
    p.add_argument('--size', type=whole(15), nargs=2, default=[256, 256], metavar=('H', 'W'), help='LR input size')
    p.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    p.add_argument('--backend', default='auto', help='auto, torch, compile, openvino or onnxruntime, for the '
                                                      'deployed form; the training form runs in torch')
    p.add_argument('--dtype', default='auto',
                   help='precision of the deployed form: auto (as basicsr infer: the fastest that keeps the picture '
                        'here), fp32, fp16 or bf16; --protocol ntire runs fp32 unless one is given')
    p.add_argument('--protocol', choices=('default', 'ntire'), default='default',
                   help="ntire: the challenge's runtime protocol over a folder of LR images (fp32, cuDNN benchmark "
                        "off, no warm-up, CUDA events per forward, mean; max_memory_allocated)")
    p.add_argument('--input', help='ntire protocol: folder of LR images (None: the built-in photos, x4 bicubic)')
    p.add_argument('--runs', type=whole(1), default=10, help='timed forwards (median reported)')
    p.add_argument('--warmup', type=whole(0), default=3, help='untimed forwards first')
    p.add_argument('--threads', type=whole(1), default=None, help="CPU threads (None: torch's default)")
    p.add_argument('--no-timing', action='store_true', help='counts only')
    p.set_defaults(func=run)
    return p


def run(a: argparse.Namespace) -> int:
    import torch

    from ..archs import PFDN
    from ..deploy.runtime.build import build_runner
    from ..deploy.runtime.choose import parse_device

    device = torch.device(str(parse_device(a.device)))
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise OptionsError('cuda asked for but CUDA is not available; use cpu', 'device')
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.weights:
        from ..archs.pfdn.convert import reparameterized
        from ..files.checkpoints import build_from_checkpoint
        net, _ = build_from_checkpoint(a.weights)
        forms = {'training': net, 'deployed': reparameterized(net)} if not net.deploy else {'deployed': net}
    else:
        forms = {'training': PFDN(), 'deployed': PFDN(deploy=True)}

    def note(message):
        print(message, file=sys.stderr)

    dtype = 'fp32' if a.protocol == 'ntire' and a.dtype == 'auto' else a.dtype  # the challenge's scores are fp32
    runner: Optional[Runner] = None if a.no_timing else build_runner(forms['deployed'], a.backend, device, dtype,
                                                                     warn=note)
    if a.protocol == 'ntire':
        ntire(forms['deployed'], runner, device, a.input)
        return 0
    from ..deploy.runtime.efficiency import cpu_peak_bytes, profile, time_forward

    h, w = a.size
    print(f'PFDN x{forms["deployed"].upscale}, LR 3x{h}x{w}, {device}'
          + (f', {torch.get_num_threads()} threads' if device.type == 'cpu' else ''))
    head = '| form | params | MACs (G) | conv MACs (G) | activations (M) | convs |'
    sep = '| --- | --- | --- | --- | --- | --- |'
    if not a.no_timing:
        head += f' runs on | runtime (ms, median of {a.runs}) | peak memory (MB) |'
        sep += ' --- | --- | --- |'
    print(head + '\n' + sep)
    results = {name: profile(net, (h, w), device, a.runs, a.warmup, timing=not a.no_timing and name == 'training')
               for name, net in forms.items()}
    if runner is not None:
        x = torch.rand(1, 3, h, w, device=str(runner.device))
        results['deployed']['seconds'], results['deployed']['peak_bytes'] = time_forward(runner, x, a.runs, a.warmup)
    for name, r in results.items():
        if not a.no_timing and r['peak_bytes'] is None and device.type == 'cpu':
            r['peak_bytes'] = cpu_peak_bytes(forms[name], (h, w), runner.name if runner else 'torch',
                                             runner.dtype if runner else 'fp32')
        row = (f"| {name} | {r['params']:,} | {r['macs'] / 1e9:.2f} | {r['conv_macs'] / 1e9:.3f} | "
               f"{r['activations'] / 1e6:.2f} | {r['convs']} |")
        if not a.no_timing:
            peak = '-' if r['peak_bytes'] is None else f"{r['peak_bytes'] / 2**20:.0f}"
            where = f'torch (fp32, {device}), branch by branch' if name == 'training' else str(runner)
            row += f" {where} | {r['seconds'] * 1e3:.1f} | {peak} |"
        print(row)
    return 0


def ntire(net: nn.Module, runner: Any, device: Any, folder: Optional[str]) -> None:
    from ..deploy.runtime.efficiency import folder_runtime, ntire_runtime

    images, label = lr_images(folder)
    mean, peak = ntire_runtime(net, images, device)
    print(f'NTIRE Efficient SR protocol on {label} ({len(images)} images), {device}: plain fp32 forward, cuDNN '
          'benchmark off, no warm-up, ' + ('CUDA events' if device.type == 'cuda' else 'wall clock')
          + ' around each forward')
    print('| runs on | mean runtime (ms) | peak memory (MB) |\n| --- | --- | --- |')
    print(f"| NTIRE protocol: torch (fp32, {device}) | {mean:.2f} | {'-' if peak is None else f'{peak:.1f}'} |")
    if runner is not None:
        print(f'| {runner}, after one untimed pass | {folder_runtime(runner, images):.2f} | - |')


def lr_images(folder: Optional[str] = None) -> Tuple[List[torch.Tensor], str]:
    """LR input tensors: the images of ``folder``, or the built-in photos downscaled x4 (MATLAB-style bicubic)."""
    import torch

    from ..deploy.runtime.upscaler import to_network
    from ..files.images import list_images, read_image

    if folder:
        paths = list_images(folder)
        if not paths:
            raise DataError('no images here', folder)
        return [torch.from_numpy(to_network(read_image(p))[0]) for p in paths], folder
    from ..evaluation.protocol import bicubic_lr, to_tensor  # the benchmark protocol's LR: BasicSR's bicubic
    from ..layout.samples import SAMPLE_FILES, sample_image
    lrs = [bicubic_lr(sample_image(name), 4)[1] for name in SAMPLE_FILES]
    return [to_tensor(lr) for lr in lrs], 'the built-in photos (x4 bicubic LR)'
