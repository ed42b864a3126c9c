"""``basicsr export``: deployed weights as .pth (released layout), .safetensors, ONNX, NCNN and int8."""
from __future__ import annotations

import argparse
import os
import sys

from . import add_command, file_stem, in_range

FORMATS = ('pth', 'safetensors', 'onnx')


def add_parser(sub: 'argparse._SubParsersAction') -> argparse.ArgumentParser:
    from ..layout.locations import WEIGHTS

    p = add_command(sub, 'export', 'deployed weights as .pth, .safetensors and ONNX',
                    'Export a PFDN checkpoint (either form; the training form is fused) for deployment: .pth in the '
                    "released key layout, .safetensors, ONNX with dynamic batch/height/width (checked in onnxruntime "
                    'before it is written), each loadable by spandrel after '
                    'pfdn_arch.deploy.export.spandrel_arch.register().')
    p.add_argument('--weights', help=f'checkpoint (None: {WEIGHTS})')
    p.add_argument('--out', default='exported', help='output folder')
    p.add_argument('--name', type=file_stem, help='file name stem (None: pfdn_x<scale>)')
    p.add_argument('--formats', nargs='+', choices=FORMATS, default=list(FORMATS), help='what to write')
    p.add_argument('--opset', type=in_range(11, 23), default=17,
                   help='ONNX opset (11..23: what the exporter supports and the graph\'s resize needs)')
    p.add_argument('--int8', action='store_true',
                   help="also an int8 model (NNCF post-training quantization; pip install 'pfdn[int8]'): "
                        '<name>_int8.xml/.bin (OpenVINO IR), <name>_int8.onnx (QDQ) and <name>_int8.json (how they '
                        'were made, the PSNR each loses on check images)')
    p.add_argument('--calibration', help='--int8: a folder of LR images like those to upscale (None: the built-in '
                                         'photos); not used for a checkpoint of quantization-aware fine-tuning '
                                         '(options/qat_pfdn_x4.yml), whose ranges were trained')
    p.add_argument('--ncnn', action='store_true',
                   help="also NCNN files for Upscayl and other NCNN apps (pnnx; pip install 'pfdn[ncnn]'): "
                        '<scale>x-PFDN.param/.bin (the name Upscayl reads the scale from; --name replaces it), '
                        'blobs data/output, fp16 weights')
    p.add_argument('--ncnn-fp32', action='store_true', help='--ncnn: fp32 weights instead of fp16')
    p.add_argument('--comfyui-node', action='store_true',
                   help="print the folder of ComfyUI's custom node for PFDN (link it into ComfyUI/custom_nodes/) and "
                        'stop')
    p.add_argument('--force', action='store_true', help='overwrite existing files')
    p.set_defaults(func=run)
    return p


def run(a: argparse.Namespace) -> int:
    if a.comfyui_node:  # the node folder ships inside the package, beside this room
        print(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'comfyui_node'))
        return 0
    from ..deploy.export.formats import check_onnx, export_onnx, output_paths, save_pth, save_safetensors
    from ..deploy.export.ncnn import default_name, export_ncnn, scale_from_name
    from ..deploy.export.unfinished import UnfinishedExport
    from ..errors import NotInstalled, OptionsError, OutputExists, PFDNError, installed
    from ..files.atomic import atomic_path
    from ..files.checkpoints import build_from_checkpoint, qat_state
    from ..files.paths import output_dir
    from .infer import weights_or_default

    needs = {'onnx': 'onnx', 'safetensors': 'safetensors'}
    for fmt in a.formats:  # before anything is written
        if fmt in needs and not installed(needs[fmt]):
            raise NotInstalled(needs[fmt], f'{fmt} export (or leave {fmt} out of --formats)', 'export')
    if a.ncnn_fp32 and not a.ncnn:
        raise OptionsError('is for the NCNN files; add --ncnn', 'ncnn-fp32')
    if a.ncnn and not installed('pnnx'):
        raise NotInstalled('pnnx', 'NCNN export', 'ncnn')
    output_dir(a.out)  # before anything is loaded or written
    weights = weights_or_default(a.weights)
    net, _ = build_from_checkpoint(weights)
    qat = qat_state(weights)
    if qat is not None and not a.int8:
        print('note: this checkpoint also holds int8 quantizers from quantization-aware fine-tuning; --int8 exports '
              'them (the files here hold its float weights)', file=sys.stderr)
    if not net.deploy:
        net.reparameterize()
    net.eval()
    name = a.name or f'pfdn_x{net.upscale}'
    paths = output_paths(a.out, name, a.formats)
    if a.int8:
        for module in ('nncf', 'openvino', 'onnx'):
            if not installed(module):
                raise NotInstalled(module, 'int8 export', 'int8')
        paths.update({f'int8 {k}': os.path.join(a.out, f'{name}_int8{k}') for k in ('.xml', '.bin', '.onnx', '.json')})
    if a.ncnn:
        ncnn_name = a.name or default_name(net.upscale)
        paths.update({f'ncnn {k}': os.path.join(a.out, ncnn_name + k) for k in ('.param', '.bin')})
        if scale_from_name(ncnn_name) != net.upscale:
            print(f'note: Upscayl reads the scale from the file name, and would take {ncnn_name} for '
                  f'x{scale_from_name(ncnn_name)}, not x{net.upscale}: put {net.upscale}x in --name', file=sys.stderr)
    same = [q for q in paths.values() if os.path.exists(q) and os.path.samefile(q, weights)]
    if same:
        raise OptionsError(f'{same[0]} is the --weights file itself; choose another --out or --name', 'out')
    settings = {'formats': sorted(a.formats), 'opset': a.opset, 'int8': a.int8, 'calibration': a.calibration,
                'ncnn': a.ncnn, 'ncnn_fp32': a.ncnn_fp32, 'paths': sorted(paths.values())}
    unfinished = UnfinishedExport(a.out, name, weights, settings) if os.path.isdir(a.out) else None
    theirs = unfinished.theirs(paths.values()) if unfinished is not None else []
    if theirs and not a.force:
        raise OutputExists(theirs[0])
    os.makedirs(a.out, exist_ok=True)
    unfinished = unfinished or UnfinishedExport(a.out, name, weights, settings)
    unfinished.begin(paths.values())
    steps = {step: [q for k, q in paths.items() if k.split()[0] == step] for step in ('pth', 'safetensors', 'onnx',
                                                                                    'int8', 'ncnn')}

    def resumed(step):
        """A step an earlier, stopped run of this same export finished (its files unchanged since) is kept."""
        if steps[step] and not a.force and unfinished.finished(step, steps[step]):
            print(f"{', '.join(steps[step])}: kept from the stopped run of this export")
            return True
        return not steps[step]

    sd = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    if not resumed('pth'):
        save_pth(sd, paths['pth'])
        unfinished.record('pth', steps['pth'])
        print(f"{paths['pth']}: {len(sd)} tensors, released key layout")
    if not resumed('safetensors'):
        save_safetensors(sd, paths['safetensors'], {'architecture': 'PFDN', 'scale': str(net.upscale)})
        unfinished.record('safetensors', steps['safetensors'])
        print(f"{paths['safetensors']}: {len(sd)} tensors")
    if not resumed('onnx'):
        with atomic_path(paths['onnx']) as tmp:  # checked before it takes the final name
            export_onnx(net, tmp, a.opset)
            diff = check_onnx(net, tmp)
            if diff is not None and not diff <= 1e-4:
                raise PFDNError(f'the ONNX export disagrees with PyTorch in onnxruntime (max |diff| {diff:.1e}); it '
                                'was not written', paths['onnx'])
        unfinished.record('onnx', steps['onnx'])
        check = ("onnxruntime not installed, not checked (pip install 'pfdn[export]')" if diff is None
                 else f'onnxruntime vs PyTorch max |diff| {diff:.1e} on 3 sizes')
        print(f"{paths['onnx']}: dynamic batch/height/width, opset {a.opset}; {check}")
    if not resumed('int8'):
        from ..deploy.export.int8.ptq import TARGET_LOSS, write_int8
        if qat is not None and a.calibration:
            print('note: --calibration is not used: this checkpoint holds the ranges quantization-aware fine-tuning '
                  'trained', file=sys.stderr)
        record, files = write_int8(net, a.out, name, a.calibration, qat=qat)
        unfinished.record('int8', steps['int8'])
        for kind, path in files.items():
            loss = record['psnr_loss_db'][kind]
            print(f'{path}: int8 ({kind}); {loss:+.3f} dB against fp32 on the check images')
        worst = min(record['psnr_loss_db'].values())
        if -worst > TARGET_LOSS:
            print(f'note: this int8 model loses {-worst:.2f} dB (more than {TARGET_LOSS} dB) on the check images; '
                  f"{name}_int8.json records it and basicsr infer says so at every use", file=sys.stderr)
    if not resumed('ncnn'):
        param, _ = export_ncnn(net, a.out, ncnn_name, fp16=not a.ncnn_fp32)
        unfinished.record('ncnn', steps['ncnn'])
        print(f"{param} (+ .bin): NCNN for Upscayl and other NCNN apps, {'fp32' if a.ncnn_fp32 else 'fp16'} weights, "
              "blobs data/output, any input size; copy both into Upscayl's models folder")
    unfinished.complete()
    if installed('spandrel'):
        import spandrel

        from ..deploy.export.spandrel_arch import register
        register()
        for f in ('pth', 'safetensors'):
            if f in paths:
                spandrel.ModelLoader().load_from_file(paths[f])
        print('spandrel (chaiNNer/ComfyUI loader): loads these files after '
              'pfdn_arch.deploy.export.spandrel_arch.register()')
    return 0
