"""``basicsr export``: deployed weights as .pth (released layout), .safetensors and ONNX."""
import os

from ..errors import UserError
from .main import parser

FORMATS = ('pth', 'safetensors', 'onnx')


def main(argv, prog='basicsr export'):
    p = parser(prog, 'Export a PFDN checkpoint (either form; training form is fused) for deployment.')
    p.add_argument('--weights', help='checkpoint (default: the released weights)')
    p.add_argument('--out', default='exported', help='output folder (default: exported)')
    p.add_argument('--name', help='file name stem (default: pfdn_x<scale>)')
    p.add_argument('--formats', nargs='+', choices=FORMATS, default=list(FORMATS))
    p.add_argument('--opset', type=int, default=17)
    p.add_argument('--force', action='store_true', help='overwrite existing files')
    a = p.parse_args(argv)

    from ..checkpoint import build_pfdn_from_checkpoint
    from ..export import check_onnx, export_onnx, output_paths, save_pth, save_safetensors
    from .infer import default_weights

    net, _ = build_pfdn_from_checkpoint(a.weights or default_weights())
    if not net.deploy:
        net.reparameterize()
    net.eval()
    name = a.name or f'pfdn_x{net.upscale}'
    paths = output_paths(a.out, name, a.formats)
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
        export_onnx(net, paths['onnx'], a.opset)
        diff = check_onnx(net, paths['onnx'])
        check = ("onnxruntime not installed, not checked (pip install 'pfdn[export]')" if diff is None
                 else f'onnxruntime vs PyTorch max |diff| {diff:.1e} on 3 sizes')
        if diff is not None and diff > 1e-4:
            raise UserError(f"{paths['onnx']}: onnxruntime disagrees with PyTorch (max |diff| {diff:.1e})")
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
