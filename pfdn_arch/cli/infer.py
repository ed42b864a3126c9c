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
    from ..backends import BACKENDS, DTYPES

    p = parser(prog, 'Upscale images (png, jpg, bmp, tiff, webp; grayscale, RGBA and 16-bit kept as such).')
    p.add_argument('-i', '--input', required=True, help='an image or a folder of images')
    p.add_argument('-o', '--output', required=True, help='output folder (same file names)')
    p.add_argument('--weights', help='deployed or training-form PFDN checkpoint (default: the released weights)')
    p.add_argument('--backend', default='auto', choices=BACKENDS,
                   help='auto: the fastest for the device (CPU: openvino, else onnxruntime, else torch; CUDA: '
                        'compile); torch: the plain eager forward (default: auto)')
    p.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N (default: cpu)')
    p.add_argument('--dtype', default='fp32', choices=tuple(DTYPES),
                   help='fp16 needs CUDA; bf16 needs a CPU with AVX512-BF16/AMX or a GPU with bf16 (default: fp32)')
    p.add_argument('--batch', type=int, default=0,
                   help='same-size images and tiles run this many at a time (default: 16 on CUDA, 1 on the CPU)')
    p.add_argument('--tile', type=int, default=0, help='LR tile side for bounded memory (default: 0, whole image)')
    p.add_argument('--tile-overlap', type=int, default=16, help='LR pixels shared by neighbouring tiles (default: 16)')
    p.add_argument('--force', action='store_true', help='overwrite existing outputs')
    a = p.parse_args(argv)

    from ..backends import make_runner
    from ..checkpoint import build_pfdn_from_checkpoint
    from ..infer import Upscaler

    inputs = collect_inputs(a.input)
    net, _ = build_pfdn_from_checkpoint(a.weights or default_weights())
    if not net.deploy:
        net.reparameterize()
    try:
        runner = make_runner(net, a.backend, a.device, a.dtype, warn=lambda m: print(m, file=sys.stderr))
        batch = a.batch or (16 if runner.device.type == 'cuda' else 1)
        up = Upscaler(runner, a.tile, a.tile_overlap, batch)
    except ValueError as err:
        raise UserError(str(err)) from None
    print(f'backend: {runner}', file=sys.stderr)
    os.makedirs(a.output, exist_ok=True)
    failed, skipped, done = [], [], 0
    pending = []  # (path, image) read but not yet upscaled: same-size images go through as one batch

    def flush():
        nonlocal done
        try:
            results = up.upscale_images([img for _, img in pending])
        except (ValueError, RuntimeError) as err:
            failed.extend((path, str(err).splitlines()[0]) for path, _ in pending)
            results = []
        for (path, _), result in zip(pending, results):
            out_path = os.path.join(a.output, os.path.basename(path))
            if cv2.imwrite(out_path, result):
                done += 1
            else:
                failed.append((path, f'cannot write {out_path}'))
        bar.update(len(pending))
        pending.clear()

    bar = tqdm(total=len(inputs), desc='upscaling', unit='img')
    for path in inputs:
        out_path = os.path.join(a.output, os.path.basename(path))
        if os.path.abspath(out_path) == os.path.abspath(path):
            failed.append((path, 'output would replace the input; choose another -o'))
            bar.update()
            continue
        if os.path.exists(out_path) and not a.force:
            skipped.append(out_path)
            bar.update()
            continue
        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if img is None:
            failed.append((path, 'unreadable or corrupt image'))
            bar.update()
            continue
        if pending and (pending[0][1].shape[:2] != img.shape[:2] or len(pending) >= batch):
            flush()
        pending.append((path, img))
    if pending:
        flush()
    bar.close()
    print(f'{done} upscaled x{net.upscale} into {a.output}' + (f'; {len(skipped)} skipped because the output exists '
                                                              '(--force overwrites)' if skipped else ''))
    for path, why in failed:
        print(f'error: {path}: {why}', file=sys.stderr)
    return 1 if failed else 0
