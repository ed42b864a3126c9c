"""``basicsr export``: deployed weights as .pth, .safetensors, ONNX, int8 and NCNN (``deploy/export/steps.py``: one
object per format, one loop)."""
from __future__ import annotations

import argparse
import os
import sys

from . import add_command, file_stem, in_range

def add_parser(sub: 'argparse._SubParsersAction') -> argparse.ArgumentParser:
    from ..deploy.export.steps import DEFAULT_FORMATS, FORMATS
    from ..layout.locations import WEIGHTS

    p = add_command(sub, 'export', 'deployed weights as .pth, .safetensors, ONNX, int8 and NCNN',
                    'Export a PFDN checkpoint (either form; the training form is fused) for deployment, each file '
                    'checked before it takes its name: .pth in the released key layout and .safetensors (both loaded '
                    'back, and in spandrel), ONNX with dynamic batch/height/width (checked in onnxruntime), int8 '
                    '(NNCF) and NCNN (for Upscayl and chaiNNer). A stopped export continues when rerun.')
    p.add_argument('--weights', help=f'checkpoint (None: {WEIGHTS})')
    p.add_argument('--out', default='exported', help='output folder')
    p.add_argument('--name', type=file_stem, help='file name stem of every format (None: pfdn_x<scale>, and '
                                                 '<scale>x-PFDN for NCNN)')
    p.add_argument('--formats', nargs='+', choices=list(FORMATS), default=list(DEFAULT_FORMATS),
                   help="what to write, any of them: pth, safetensors, onnx (pip install 'pfdn[export]'); int8: "
                        "<name>_int8.xml/.bin (OpenVINO IR), <name>_int8.onnx (QDQ) and <name>_int8.json (how they "
                        "were made, the PSNR each loses; pip install 'pfdn[int8]'); ncnn: <scale>x-PFDN.param/.bin "
                        "(the name Upscayl reads the scale from), blobs data/output, fp16 weights (pip install "
                        "'pfdn[ncnn]')")
    p.add_argument('--opset', type=in_range(11, 23), default=17,
                   help='ONNX opset (11..23: what the exporter supports and the graph\'s resize needs)')
    p.add_argument('--int8', action='store_true', help='add int8 to --formats (the same as naming it there)')
    p.add_argument('--calibration', help='int8: a folder of LR images like those to upscale (None: the built-in '
                                         'photos); not used for a checkpoint of quantization-aware fine-tuning '
                                         '(options/qat_pfdn_x4.yml), whose ranges were trained')
    p.add_argument('--ncnn', action='store_true', help='add ncnn to --formats (the same as naming it there)')
    p.add_argument('--ncnn-fp32', action='store_true', help='ncnn: fp32 weights instead of fp16')
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
    from ..deploy.export.steps import export
    from .infer import weights_or_default

    def note(line: str) -> None:
        print(line, file=sys.stderr)
    export(weights_or_default(a.weights), a.out, list(a.formats) + ['int8'] * a.int8 + ['ncnn'] * a.ncnn,
           name=a.name, opset=a.opset, calibration=a.calibration, ncnn_fp32=a.ncnn_fp32, force=a.force, note=note)
    return 0
