"""``basicsr profile``: parameters, MACs, activations, conv count, runtime and peak memory of PFDN."""
import torch

from ..archs import PFDN
from ..errors import UserError
from ..profile import cpu_peak_bytes, measured_form, profile
from .main import parser


def main(argv, prog='basicsr profile'):
    p = parser(prog, 'Efficiency figures of the training and deployed forms (NTIRE counting; see '
                     'pfdn_arch/profile.py).')
    p.add_argument('--weights', help='a PFDN checkpoint (either form); default: the released x4 architecture')
    p.add_argument('--size', type=int, nargs=2, default=[256, 256], metavar=('H', 'W'), help='LR input size')
    p.add_argument('--device', default='cpu', help='cpu or cuda')
    p.add_argument('--runs', type=int, default=10, help='timed forwards (median reported)')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--threads', type=int, default=None, help='CPU threads')
    p.add_argument('--no-timing', action='store_true', help='counts only')
    a = p.parse_args(argv)
    if a.device.startswith('cuda') and not torch.cuda.is_available():
        raise UserError('--device cuda asked for but CUDA is not available; use --device cpu')
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.weights:
        from ..checkpoint import build_pfdn_from_checkpoint
        net, _ = build_pfdn_from_checkpoint(a.weights)
        forms = {'training' if not net.deploy else 'deployed': net}
        if not net.deploy:
            import copy
            forms['deployed'] = copy.deepcopy(net).reparameterize()
    else:
        forms = {'training': PFDN(), 'deployed': PFDN(deploy=True)}
    h, w = a.size
    print(f'PFDN x{next(iter(forms.values())).upscale}, LR 3x{h}x{w}, {a.device}'
          + (f', {torch.get_num_threads()} threads' if a.device == 'cpu' else ''))
    head = '| form | params | MACs (G) | conv MACs (G) | activations (M) | convs |'
    sep = '| --- | --- | --- | --- | --- | --- |'
    if not a.no_timing:
        head += f' runtime (ms, median of {a.runs}) | peak memory (MB) |'
        sep += ' --- | --- |'
    print(head + '\n' + sep)
    results = {name: profile(net, (h, w), a.device, a.runs, a.warmup, timing=not a.no_timing, memory=False)
               for name, net in forms.items()}
    for name, r in results.items():
        if not a.no_timing and r['peak_bytes'] is None:  # CPU: after all timings (see profile())
            net = measured_form(forms[name])
            r['peak_bytes'] = cpu_peak_bytes(net, torch.rand(1, net.num_in_ch, h, w, device=a.device))
        row = (f"| {name} | {r['params']:,} | {r['macs'] / 1e9:.2f} | {r['conv_macs'] / 1e9:.3f} | "
               f"{r['activations'] / 1e6:.2f} | {r['convs']} |")
        if not a.no_timing:
            peak = '-' if r['peak_bytes'] is None else f"{r['peak_bytes'] / 2**20:.0f}"
            row += f" {r['seconds'] * 1e3:.1f} | {peak} |"
        print(row)
