"""``basicsr export``: deployed weights as .pth (released layout), .safetensors and ONNX."""
import os

from ..errors import UserError
from . import add_command
from ..shipped import WEIGHTS, default_weights

FORMATS = ('pth', 'safetensors', 'onnx')


def add_parser(sub):
    p = add_command(sub, 'export', 'deployed weights as .pth, .safetensors and ONNX',
                    'Export a PFDN checkpoint (either form; the training form is fused) for deployment: .pth in the '
                    "released key layout, .safetensors, ONNX with dynamic batch/height/width (checked in onnxruntime "
                    'before it is written), each loadable by spandrel after pfdn_arch.spandrel_arch.register().')
    p.add_argument('--weights', help=f'checkpoint (None: {WEIGHTS})')
    p.add_argument('--out', default='exported', help='output folder')
    p.add_argument('--name', help='file name stem (None: pfdn_x<scale>)')
    p.add_argument('--formats', nargs='+', choices=FORMATS, default=list(FORMATS), help='what to write')
    p.add_argument('--opset', type=int, default=17, help='ONNX opset')
    p.add_argument('--force', action='store_true', help='overwrite existing files')
    p.set_defaults(func=run)
    return p


def run(a):
    from ..atomic import atomic_path
    from ..backends import importable
    from ..checkpoint import build_pfdn_from_checkpoint
    from ..export import check_onnx, export_onnx, output_paths, save_pth, save_safetensors

    needs = {'onnx': 'onnx', 'safetensors': 'safetensors'}
    for fmt in a.formats:  # before anything is written
        if fmt in needs and not importable(needs[fmt]):
            raise UserError(f"{fmt} export needs the {needs[fmt]} package: pip install 'pfdn[export]' (or leave "
                            f"{fmt} out of --formats)")
    weights = a.weights or default_weights()
    net, _ = build_pfdn_from_checkpoint(weights)
    if not net.deploy:
        net.reparameterize()
    net.eval()
    name = a.name or f'pfdn_x{net.upscale}'
    paths = output_paths(a.out, name, a.formats)
    same = [q for q in paths.values() if os.path.exists(q) and os.path.samefile(q, weights)]
    if same:
        raise UserError(f'{same[0]} is the --weights file itself; choose another --out or --name')
    existing = [q for q in paths.values() if os.path.exists(q)]
    if existing and not a.force:
        raise UserError(f'{existing[0]} exists; pass --force to overwrite or choose another --out/--name')
    os.makedirs(a.out, exist_ok=True)
    sd = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    if 'pth' in paths:
        save_pth(sd, paths['pth'])
        print(f"{paths['pth']}: {len(sd)} tensors, released key layout")
    if 'safetensors' in paths:
        save_safetensors(sd, paths['safetensors'], {'architecture': 'PFDN', 'scale': str(net.upscale)})
        print(f"{paths['safetensors']}: {len(sd)} tensors")
    if 'onnx' in paths:
        with atomic_path(paths['onnx']) as tmp:  # checked before it takes the final name
            export_onnx(net, tmp, a.opset)
            diff = check_onnx(net, tmp)
            if diff is not None and not diff <= 1e-4:
                raise UserError(f"the ONNX export disagrees with PyTorch in onnxruntime (max |diff| {diff:.1e}); "
                                f"{paths['onnx']} was not written")
        check = ("onnxruntime not installed, not checked (pip install 'pfdn[export]')" if diff is None
                 else f'onnxruntime vs PyTorch max |diff| {diff:.1e} on 3 sizes')
        print(f"{paths['onnx']}: dynamic batch/height/width, opset {a.opset}; {check}")
    try:
        from ..spandrel_arch import register
        import spandrel
        register()
        for f in ('pth', 'safetensors'):
            if f in paths:
                spandrel.ModelLoader().load_from_file(paths[f])
        print('spandrel (chaiNNer/ComfyUI loader): loads these files after pfdn_arch.spandrel_arch.register()')
    except ImportError:
        pass
