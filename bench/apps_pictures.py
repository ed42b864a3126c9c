"""How the apps' own tiling and padding change the released PFDN's picture, against one whole-image run of the same
network (PyTorch fp32, so that only the tiling differs): Upscayl's tiles (upscayl-ncnn: 200, 100, 64 or 32 px by
the GPU's memory, each read with 10 px more on every side, mirrored at the image's edges, no blending) and chaiNNer's
ONNX route (each image padded at the bottom and right to a multiple of 16 by reflection, the padding cut off).

    python bench/apps_pictures.py [--sets Set5 Urban100] [--limit 20]

Prints, per set, the lowest and median PSNR (RGB, 0-1) of each app's result against the whole-image run, and how
many images came out the same (no padding was needed); and the benchmark protocol's score (Y, border 4) of each.
"""
import argparse
import os
import statistics
import sys

import cv2
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))
sys.path.insert(0, os.path.join(HERE, '..', 'tests'))

from pfdn_arch.data.bicubic import bicubic_lr  # noqa: E402
from pfdn_arch.files.checkpoints import build_from_checkpoint  # noqa: E402
from pfdn_arch.files.images import list_images, read_image  # noqa: E402
from test_ncnn import upscayl_tiles  # noqa: E402

SHARED = os.path.join(HERE, '..', '..', 'shared')
WEIGHTS = os.path.join(SHARED, 'weights', 'team08_PFDN.pth')


def psnr(a, b):
    """PSNR of two 0-1 pictures after clipping; inf where they are the same."""
    mse = float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))
    return float('inf') if mse == 0 else 10 * np.log10(1 / mse)


def score(chw, hr):
    """The benchmark protocol's PSNR against the HR image (Y channel, 4 px border cut), as basicsr test scores it."""
    from basicsr.metrics import calculate_psnr
    sr = (np.clip(chw, 0, 1).transpose(1, 2, 0)[:, :, ::-1] * 255).round().astype(np.uint8)
    return calculate_psnr(sr, hr, crop_border=4, test_y_channel=True)


def chainner_padded(run, image, multiple=16):
    """chaiNNer's ONNX route: bottom/right reflection padding to a multiple of ``multiple``, cut off after."""
    h, w = image.shape[1:]
    ph, pw = -h % multiple, -w % multiple
    sr = run(np.pad(image, ((0, 0), (0, ph), (0, pw)), mode='reflect'))
    return sr[:, :h * 4, :w * 4]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--sets', nargs='+', default=['Set5', 'Urban100'])
    p.add_argument('--limit', type=int, default=20, help='images per set')
    a = p.parse_args()
    net = build_from_checkpoint(WEIGHTS)[0].eval()

    def run(chw):
        with torch.no_grad():
            return net(torch.from_numpy(np.ascontiguousarray(chw))[None])[0].numpy()

    ways = {f'Upscayl, {t} px tiles': (lambda image, t=t: upscayl_tiles(run, image, 4, tile=t))
            for t in (200, 100, 64, 32)}
    ways['chaiNNer ONNX, padded to 16'] = lambda image: chainner_padded(run, image)
    print('| set (images) | way | lowest dB against whole | median | images unchanged | benchmark PSNR (Y, border 4) |')
    print('|---|---|---|---|---|---|')
    for name in a.sets:
        scores = {way: [] for way in ways}
        benchmark = {way: [] for way in ['one whole-image run', *ways]}
        for path in list_images(os.path.join(SHARED, 'data', 'benchmark', name, 'HR'))[:a.limit]:
            hr, lr = bicubic_lr(read_image(path, cv2.IMREAD_COLOR), 4)
            image = np.ascontiguousarray(lr[:, :, ::-1].transpose(2, 0, 1)).astype(np.float32) / 255
            whole = run(image)
            benchmark['one whole-image run'].append(score(whole, hr))
            for way, make in ways.items():
                result = make(image)
                scores[way].append(psnr(result, whole))
                benchmark[way].append(score(result, hr))
        for way, s in benchmark.items():
            same = sum(v == float('inf') for v in scores.get(way, []))
            against = (f'{min(scores[way]):.1f} | {statistics.median(scores[way]):.1f} | {same}' if way in scores
                       else '- | - | -')
            print(f'| {name} ({len(s)}) | {way} | {against} | {statistics.mean(s):.4f} |')


if __name__ == '__main__':
    main()
