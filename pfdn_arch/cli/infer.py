"""``basicsr infer -i PATH -o DIR``: upscale a file or a folder with a deployed PFDN."""
import os
import sys

from ..errors import UserError
from . import add_command
from ..shipped import WEIGHTS, default_weights


def add_parser(sub):
    p = add_command(sub, 'infer', 'upscale an image or a folder (backends, batches, tiles, 16-bit, alpha)',
                    'Upscale images with a deployed PFDN (png, jpg, bmp, tiff, webp; grayscale, RGBA and 16-bit kept '
                    'as such). Finished outputs are kept on a rerun; --force replaces them.',
                    on_interrupt='rerun the same command to continue: finished images are kept')
    p.add_argument('-i', '--input', required=True, help='an image or a folder of images')
    p.add_argument('-o', '--output', required=True, help='output folder (same file names)')
    p.add_argument('--weights', help=f'deployed or training-form PFDN checkpoint (None: {WEIGHTS})')
    p.add_argument('--backend', default='auto',
                   help='auto (the fastest for the device: CPU openvino, else onnxruntime, else torch; CUDA compile), '
                        'torch (the plain eager forward), compile, openvino or onnxruntime')
    p.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    p.add_argument('--dtype', default='fp32',
                   help='fp32, fp16 (CUDA) or bf16 (a CPU with AVX512-BF16/AMX, or a GPU with bf16); a precision the '
                        'hardware lacks falls back to fp32 with a note')
    p.add_argument('--batch', type=int, default=0,
                   help='same-size images and tiles run this many at a time (0: 16 on CUDA, 1 on the CPU)')
    p.add_argument('--tile', type=int, default=0, help='LR tile side for bounded memory (0: whole images)')
    p.add_argument('--tile-overlap', type=int, default=16, help='LR pixels shared by neighbouring tiles')
    p.add_argument('--force', action='store_true', help='overwrite existing outputs')
    p.set_defaults(func=run)
    return p


def collect_inputs(path):
    from ..images import IMAGE_EXTS, list_images

    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        files = list_images(path)
        if not files:
            raise UserError(f'no images ({", ".join(IMAGE_EXTS)}) in {path}')
        return files
    raise UserError(f'input not found: {path}')


def kept_output(out_path, src_shape, scale):
    """None when an existing output is a complete result for an input of ``src_shape`` (so a rerun keeps it);
    otherwise why it is not (a rerun reports it and leaves it alone: it may be the user's)."""
    import cv2

    from ..images import ImageError, read_image

    try:
        out = read_image(out_path, cv2.IMREAD_UNCHANGED)
    except ImageError as err:
        return str(err).split(': ', 1)[1]
    if out.shape[:2] != (src_shape[0] * scale, src_shape[1] * scale):
        return f'it is {out.shape[1]}x{out.shape[0]}, not the x{scale} result of this input'
    return None


def run(a):
    import cv2
    from tqdm import tqdm

    from ..backends import make_runner
    from ..checkpoint import build_pfdn_from_checkpoint
    from ..images import ImageError, read_image, write_image
    from ..infer import Upscaler

    inputs = collect_inputs(a.input)
    if os.path.exists(a.output) and not os.path.isdir(a.output):
        raise UserError(f'-o {a.output} is a file; give a folder for the results')
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
            write_image(os.path.join(a.output, os.path.basename(path)), result)  # atomic: whole or absent
            done += 1
        bar.update(len(pending))
        pending.clear()

    bar = tqdm(total=len(inputs), desc='upscaling', unit='img')
    for path in inputs:
        out_path = os.path.join(a.output, os.path.basename(path))
        if os.path.exists(out_path) and os.path.samefile(out_path, path):
            failed.append((path, 'the output would replace the input; choose another -o'))
            bar.update()
            continue
        try:
            img = read_image(path, cv2.IMREAD_UNCHANGED)
        except ImageError as err:
            failed.append((path, str(err).split(': ', 1)[1]))
            bar.update()
            continue
        if os.path.exists(out_path) and not a.force:
            why = kept_output(out_path, img.shape, net.upscale)
            if why is None:
                skipped.append(out_path)
            else:
                failed.append((out_path, f'exists but is not a complete result ({why}); it was left as it is: '
                                         'remove it or pass --force'))
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
