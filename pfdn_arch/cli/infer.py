"""``basicsr infer -i PATH -o DIR``: upscale a file or a folder with a deployed PFDN."""
import os
import sys

import cv2
from tqdm import tqdm

from ..errors import UserError
from ..evaluate import IMAGE_EXTS
from .main import parser

DEFAULT_WEIGHTS = ('weights/team08_PFDN.pth', '../shared/weights/team08_PFDN.pth')


def default_weights():
    from .schedule import resolve
    for path in DEFAULT_WEIGHTS:
        if os.path.isfile(resolve(path)):
            return resolve(path)
    raise UserError('no --weights given and weights/team08_PFDN.pth not found; download the released weights '
                    'there or pass --weights')


def collect_inputs(path):
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTS))
        if not files:
            raise UserError(f'no images ({", ".join(IMAGE_EXTS)}) in {path}')
        return files
    raise UserError(f'input not found: {path}')


def main(argv, prog='basicsr infer'):
    p = parser(prog, 'Upscale images (png, jpg, bmp, tiff, webp; grayscale, RGBA and 16-bit kept as such).')
    p.add_argument('-i', '--input', required=True, help='an image or a folder of images')
    p.add_argument('-o', '--output', required=True, help='output folder (same file names)')
    p.add_argument('--weights', help='deployed or training-form PFDN checkpoint (default: the released weights)')
    p.add_argument('--tile', type=int, default=0, help='LR tile side for bounded memory (0: whole image)')
    p.add_argument('--tile-overlap', type=int, default=16, help='LR pixels shared by neighbouring tiles')
    p.add_argument('--device', default='cpu', help='cpu or cuda')
    p.add_argument('--dtype', default='fp32', choices=('fp32', 'fp16', 'bf16'),
                   help='fp16 needs CUDA; bf16 is fast on CPUs with AVX512-BF16/AMX')
    p.add_argument('--plain', action='store_true', help='use the plain eager forward instead of the fast path')
    p.add_argument('--force', action='store_true', help='overwrite existing outputs')
    a = p.parse_args(argv)

    from ..checkpoint import build_pfdn_from_checkpoint
    from ..infer import Upscaler

    inputs = collect_inputs(a.input)
    net, _ = build_pfdn_from_checkpoint(a.weights or default_weights())
    if not net.deploy:
        net.reparameterize()
    if not a.plain:
        from ..fast import fast_pfdn
        net = fast_pfdn(net)
    try:
        up = Upscaler(net, a.device, a.dtype, a.tile, a.tile_overlap, warn=lambda m: print(m, file=sys.stderr))
    except ValueError as err:
        raise UserError(str(err)) from None
    os.makedirs(a.output, exist_ok=True)
    failed, skipped, done = [], [], 0
    for path in tqdm(inputs, desc='upscaling', unit='img'):
        out_path = os.path.join(a.output, os.path.basename(path))
        if os.path.abspath(out_path) == os.path.abspath(path):
            failed.append((path, 'output would replace the input; choose another -o'))
            continue
        if os.path.exists(out_path) and not a.force:
            skipped.append(out_path)
            continue
        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if img is None:
            failed.append((path, 'unreadable or corrupt image'))
            continue
        try:
            result = up.upscale_image(img)
        except (ValueError, RuntimeError) as err:
            failed.append((path, str(err).splitlines()[0]))
            continue
        if not cv2.imwrite(out_path, result):
            failed.append((path, f'cannot write {out_path}'))
            continue
        done += 1
    print(f'{done} upscaled x{net.upscale} into {a.output}' + (f'; {len(skipped)} skipped because the output exists '
                                                              '(--force overwrites)' if skipped else ''))
    for path, why in failed:
        print(f'error: {path}: {why}', file=sys.stderr)
    return 1 if failed else 0
