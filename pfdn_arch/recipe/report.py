"""Pictures: HR | bicubic | PFDN crops with their PSNR, and the validation PSNR across a schedule's stages; the
schedule's closing report made of them."""
import os

import cv2
import numpy as np
import torch

from basicsr.metrics import calculate_psnr

from ..files.checkpoints import build_pfdn_from_checkpoint
from ..files.images import list_images, read_image, write_image
from .protocol import bicubic_lr, bicubic_upscale, evaluate_folder, to_image, to_tensor

CAPTION = 22  # pixels of caption above each crop
FONT = cv2.FONT_HERSHEY_SIMPLEX


def pick_crop(hr, size):
    """Top-left corner of the ``size`` window with the most detail (largest Laplacian energy, coarse grid)."""
    h, w = hr.shape[:2]
    size = min(size, h, w)
    gray = cv2.cvtColor(hr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    energy = np.abs(cv2.Laplacian(gray, cv2.CV_32F))
    step = max(size // 4, 1)
    best, where = -1.0, (0, 0)
    for y in range(0, h - size + 1, step):
        for x in range(0, w - size + 1, step):
            e = float(energy[y:y + size, x:x + size].mean())
            if e > best:
                best, where = e, (y, x)
    return where, size


def comparison_strip(hr, lr, sr, scale, size=160, gap=4):
    """uint8 BGR HR, LR and SR -> one image: the same detailed crop of HR, bicubic-upscaled LR and SR side by
    side, each captioned (bicubic and PFDN with their whole-image PSNR on Y, crop ``scale``)."""
    bic = bicubic_upscale(lr, scale)
    h = min(hr.shape[0], sr.shape[0], bic.shape[0])
    w = min(hr.shape[1], sr.shape[1], bic.shape[1])
    hr, bic, sr = hr[:h, :w], bic[:h, :w], sr[:h, :w]
    psnr = {name: calculate_psnr(img, hr, crop_border=scale, test_y_channel=True) for name, img in
            (('bicubic', bic), ('PFDN', sr))}
    (y, x), size = pick_crop(hr, size)
    tiles = []
    for label, img in (('HR', hr), (f"bicubic {psnr['bicubic']:.2f} dB", bic), (f"PFDN {psnr['PFDN']:.2f} dB", sr)):
        tile = np.full((size + CAPTION, size, 3), 255, np.uint8)
        tile[CAPTION:] = img[y:y + size, x:x + size]
        cv2.putText(tile, label, (4, CAPTION - 6), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    spacer = np.full((size + CAPTION, gap, 3), 255, np.uint8)
    return np.concatenate([tiles[0], spacer, tiles[1], spacer, tiles[2]], axis=1)


def psnr_plot(stages, bicubic=None, title='validation PSNR (dB)', size=(960, 420)):
    """A line chart of validation PSNR across a schedule: ``stages`` is [(label, total_iter, [(iter, psnr)])];
    each stage gets an equal share of the width (they differ in length by orders of magnitude), boundaries are
    dashed, ``bicubic`` is a horizontal line. Returns a uint8 BGR image."""
    w, h = size
    left, right, top, bottom = 60, 20, 36, 70
    img = np.full((h, w, 3), 255, np.uint8)
    values = [p for _, _, points in stages for _, p in points] + ([bicubic] if bicubic is not None else [])
    if not values:
        values = [0.0, 1.0]
    lo, hi = min(values), max(values)
    pad = max(0.1, (hi - lo) * 0.1)
    lo, hi = lo - pad, hi + pad
    width = (w - left - right) / max(len(stages), 1)

    def at(stage, it, total, value):
        return (int(left + width * (stage + min(it, total) / max(total, 1))),
                int(top + (hi - value) / (hi - lo) * (h - top - bottom)))

    grey, dark = (200, 200, 200), (60, 60, 60)
    cv2.putText(img, title, (left, 24), FONT, 0.55, dark, 1, cv2.LINE_AA)
    for k in range(5):  # y axis
        value = lo + (hi - lo) * k / 4
        y = at(0, 0, 1, value)[1]
        cv2.line(img, (left, y), (w - right, y), (235, 235, 235), 1)
        cv2.putText(img, f'{value:.2f}', (4, y + 4), FONT, 0.4, dark, 1, cv2.LINE_AA)
    if bicubic is not None:
        y = at(0, 0, 1, bicubic)[1]
        for x in range(left, w - right, 12):
            cv2.line(img, (x, y), (min(x + 6, w - right), y), (0, 0, 200), 1)
        cv2.putText(img, f'bicubic {bicubic:.2f}', (w - right - 110, y - 5), FONT, 0.4, (0, 0, 200), 1, cv2.LINE_AA)
    previous = None
    for i, (label, total, points) in enumerate(stages):
        x0 = int(left + width * i)
        for y in range(top, h - bottom, 10):  # stage boundary
            cv2.line(img, (x0, y), (x0, y + 5), grey, 1)
        for j, line in enumerate(_wrap(label, int(width // 7))[:3]):
            cv2.putText(img, line, (x0 + 4, h - bottom + 18 + 14 * j), FONT, 0.36, dark, 1, cv2.LINE_AA)
        for it, value in points:
            point = at(i, it, total, value)
            if previous is not None:
                cv2.line(img, previous, point, (160, 80, 0), 2, cv2.LINE_AA)
            cv2.circle(img, point, 3, (160, 80, 0), -1, cv2.LINE_AA)
            previous = point
    return img


def _wrap(text, width):
    lines, line = [], ''
    for part in text.replace('_', '_ ').split(' '):
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ''
        line += part
    return lines + [line] if line else lines


def schedule_report(stages, out_dir, score_folder, score_label, val_hr=None, scale=4):
    """The closing report of a schedule: the final deployed network scored on ``score_folder`` next to bicubic
    (Markdown lines), ``psnr.png`` (every stage's validation PSNR, the bicubic line of the validation set) and
    ``comparison.png`` (HR | bicubic | PFDN of the first image), written into ``out_dir``. ``stages`` are
    (Experiment, total_iter) in order; ``scale`` the networks'. Returns (lines, [written files])."""


    final = stages[-1][0]
    ckpt = final.network('latest', deployed=True)
    net, _ = build_pfdn_from_checkpoint(ckpt)
    net.eval()
    bic = evaluate_folder(None, score_folder, scale, bicubic=True)
    sr = evaluate_folder(net, score_folder, scale)
    lines = [f'deployed checkpoint: {ckpt}', f'| x{scale} on {score_label} | PSNR (Y) | SSIM (Y) |', '| --- | --- | --- |',
             f"| bicubic | {bic['psnr']:.2f} | {bic['ssim']:.4f} |",
             f"| PFDN ({final.name}) | {sr['psnr']:.2f} | {sr['ssim']:.4f} |"]
    os.makedirs(out_dir, exist_ok=True)
    curves = [(exp.name, total, [(v['iter'], v['psnr']) for v in exp.history() if 'psnr' in v])
              for exp, total in stages]
    val_bicubic = None
    if val_hr:
        val_bicubic = (bic if os.path.abspath(val_hr) == os.path.abspath(score_folder)
                       else evaluate_folder(None, val_hr, scale, bicubic=True))['psnr']
    plot, strip = os.path.join(out_dir, 'psnr.png'), os.path.join(out_dir, 'comparison.png')
    write_image(plot, psnr_plot(curves, val_bicubic, 'validation PSNR (dB, Y) across the stages'))
    hr, lr = bicubic_lr(read_image(list_images(score_folder)[0]), scale)
    with torch.no_grad():
        result = to_image(net(to_tensor(lr)))
    write_image(strip, comparison_strip(hr, lr, result, scale))
    return lines, [plot, strip]
