"""``basicsr profile``: parameters, MACs, activations, conv count, runtime and peak memory of PFDN; or, with
``--protocol ntire``, the runtime the way the NTIRE Efficient SR challenge measures it, beside ``--backend``'s."""
import sys

import torch

from ..archs import PFDN
from ..errors import UserError
from .main import parser


def main(argv, prog='basicsr profile'):
    from ..backends import BACKENDS, DTYPES

    p = parser(prog, 'Efficiency figures of the training and deployed forms (NTIRE counting; see '
                     'pfdn_arch/profile.py).')
    p.add_argument('--weights', help='a PFDN checkpoint (either form); default: the released x4 architecture')
    p.add_argument('--size', type=int, nargs=2, default=[256, 256], metavar=('H', 'W'),
                   help='LR input size (default: 256 256)')
    p.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N (default: cpu)')
    p.add_argument('--backend', default='auto', choices=BACKENDS,
                   help="backend timing the deployed form (default: auto); the training form runs in torch")
    p.add_argument('--dtype', default='fp32', choices=tuple(DTYPES), help='precision of the deployed form (default: fp32)')
    p.add_argument('--protocol', choices=('default', 'ntire'), default='default',
                   help='ntire: the challenge\'s runtime protocol over a folder of LR images (fp32, cuDNN benchmark '
                        'off, no warm-up, CUDA events per forward, mean; max_memory_allocated), beside --backend\'s '
                        'runtime on the same folder (default: default)')
    p.add_argument('--input', help='ntire protocol: folder of LR images (default: the built-in photos, x4 bicubic)')
    p.add_argument('--runs', type=int, default=10, help='timed forwards, median reported (default: 10)')
    p.add_argument('--warmup', type=int, default=3, help='untimed forwards first (default: 3)')
    p.add_argument('--threads', type=int, default=None, help='CPU threads (default: torch\'s)')
    p.add_argument('--no-timing', action='store_true', help='counts only')
    a = p.parse_args(argv)
    from ..backends import make_runner, parse_device

    try:
        device = parse_device(a.device)
    except ValueError as err:
        raise UserError(str(err)) from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise UserError('--device cuda asked for but CUDA is not available; use --device cpu')
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.weights:
        from ..archs.reparam import reparameterized
        from ..checkpoint import build_pfdn_from_checkpoint
        net, _ = build_pfdn_from_checkpoint(a.weights)
        forms = {'training': net, 'deployed': reparameterized(net)} if not net.deploy else {'deployed': net}
    else:
        forms = {'training': PFDN(), 'deployed': PFDN(deploy=True)}

    def note(message):
        print(message, file=sys.stderr)

    runner = None if a.no_timing else make_runner(forms['deployed'], a.backend, device, a.dtype, warn=note)
    if a.protocol == 'ntire':
        return ntire(forms['deployed'], runner, device, a.input)
    from ..profile import cpu_peak_bytes, measured_form, profile, time_forward

    h, w = a.size
    print(f'PFDN x{forms["deployed"].upscale}, LR 3x{h}x{w}, {device}'
          + (f', {torch.get_num_threads()} threads' if device.type == 'cpu' else ''))
    head = '| form | params | MACs (G) | conv MACs (G) | activations (M) | convs |'
    sep = '| --- | --- | --- | --- | --- | --- |'
    if not a.no_timing:
        head += f' runs on | runtime (ms, median of {a.runs}) | peak memory (MB) |'
        sep += ' --- | --- | --- |'
    print(head + '\n' + sep)
    results = {}
    for name, net in forms.items():
        timed = not a.no_timing and name == 'training'
        results[name] = profile(net, (h, w), device, a.runs, a.warmup, timing=timed, memory=False)
    if runner is not None:
        x = torch.rand(1, 3, h, w, device=runner.device)
        results['deployed']['seconds'], results['deployed']['peak_bytes'] = time_forward(runner, x, a.runs, a.warmup)
    for name, r in results.items():
        if not a.no_timing and r['peak_bytes'] is None and device.type == 'cpu':  # after every timing (profile())
            net = measured_form(forms[name])
            r['peak_bytes'] = cpu_peak_bytes(net if name == 'training' else runner, torch.rand(1, 3, h, w))
        row = (f"| {name} | {r['params']:,} | {r['macs'] / 1e9:.2f} | {r['conv_macs'] / 1e9:.3f} | "
               f"{r['activations'] / 1e6:.2f} | {r['convs']} |")
        if not a.no_timing:
            peak = '-' if r['peak_bytes'] is None else f"{r['peak_bytes'] / 2**20:.0f}"
            where = f'torch (fp32, {device}), branch by branch' if name == 'training' else str(runner)
            row += f" {where} | {r['seconds'] * 1e3:.1f} | {peak} |"
        print(row)


def ntire(net, runner, device, folder):
    from ..profile import folder_runtime, ntire_runtime

    images, label = lr_images(folder)
    mean, peak = ntire_runtime(net, images, device)
    print(f'NTIRE Efficient SR protocol on {label} ({len(images)} images), {device}: plain fp32 forward, cuDNN '
          'benchmark off, no warm-up, ' + ('CUDA events' if device.type == 'cuda' else 'wall clock')
          + ' around each forward')
    print('| runs on | mean runtime (ms) | peak memory (MB) |\n| --- | --- | --- |')
    print(f"| NTIRE protocol: torch (fp32, {device}) | {mean:.2f} | {'-' if peak is None else f'{peak:.1f}'} |")
    if runner is not None:
        print(f'| {runner}, after one untimed pass | {folder_runtime(runner, images):.2f} | - |')


def lr_images(folder=None):
    """LR input tensors: the images of ``folder``, or the built-in photos downscaled x4 (MATLAB-style bicubic)."""
    import numpy as np

    from ..evaluate import list_images, make_lr, to_tensor

    if folder:
        import cv2
        paths = list_images(folder)
        if not paths:
            raise UserError(f'no images in {folder}')
        imgs = [cv2.imread(p, cv2.IMREAD_COLOR) for p in paths]
        bad = [p for p, img in zip(paths, imgs) if img is None]
        if bad:
            raise UserError(f'cannot read {bad[0]}')
        return [to_tensor(img.astype(np.float32) / 255) for img in imgs], folder
    from ..data.samples import SAMPLE_FILES, sample_image
    lrs = [make_lr(sample_image(name), 4)[1] for name in SAMPLE_FILES]
    return [to_tensor(lr.astype(np.float32) / 255) for lr in lrs], 'the built-in photos (x4 bicubic LR)'
