"""Pictures: HR | bicubic | PFDN crops with their PSNR, and the validation PSNR across a schedule's stages; the
schedule's closing report made of them."""
from __future__ import annotations

import os
import textwrap
from typing import List, Optional, Tuple

import cv2
import numpy as np
import torch

from basicsr.metrics import calculate_psnr

from ..files.checkpoints import build_from_checkpoint
from ..files.images import list_images, read_image, write_image
from .protocol import bicubic_lr, bicubic_upscale, evaluate_folder, to_image, to_tensor

CAPTION = 22  # pixels of caption above each crop
FONT = cv2.FONT_HERSHEY_SIMPLEX


def pick_crop(hr: np.ndarray, size: int) -> Tuple[Tuple[int, int], int]:
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


def crops(hr: np.ndarray, lr: np.ndarray, sr: np.ndarray, scale: int, size: int = 160) -> tuple:
    """The comparison's crops: ((y, x), size, (h, w) of the image, {'HR', 'bicubic', 'PFDN': crop}, {'bicubic',
    'PFDN': PSNR of the crop against the HR crop, Y channel})."""
    bic = bicubic_upscale(lr, scale)
    h = min(hr.shape[0], sr.shape[0], bic.shape[0])
    w = min(hr.shape[1], sr.shape[1], bic.shape[1])
    hr, bic, sr = hr[:h, :w], bic[:h, :w], sr[:h, :w]
    (y, x), size = pick_crop(hr, size)
    crop = {label: img[y:y + size, x:x + size] for label, img in (('HR', hr), ('bicubic', bic), ('PFDN', sr))}
    psnr = {label: calculate_psnr(crop[label], crop['HR'], crop_border=0, test_y_channel=True)
            for label in ('bicubic', 'PFDN')}
    return (y, x), size, (h, w), crop, psnr


def comparison_strip(hr: np.ndarray, lr: np.ndarray, sr: np.ndarray, scale: int, size: int = 160, gap: int = 4,
                     name: Optional[str] = None) -> np.ndarray:
    """uint8 BGR HR, LR and SR -> one image: the same detailed crop of HR, bicubic-upscaled LR and SR side by side,
    under a title naming the image and the crop's place, each crop captioned with its own PSNR against the HR crop
    (Y channel): the crop's, not the whole image's, which the results table gives."""
    (y, x), size, (h, w), crop, psnr = crops(hr, lr, sr, scale, size)
    tiles = []
    for label in ('HR', 'bicubic', 'PFDN'):
        tile = np.full((size + CAPTION, size, 3), 255, np.uint8)
        tile[CAPTION:] = crop[label]
        text = label if label == 'HR' else f'{label} {psnr[label]:.2f} dB'
        cv2.putText(tile, text, (4, CAPTION - 6), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    spacer = np.full((size + CAPTION, gap, 3), 255, np.uint8)
    row = np.concatenate([tiles[0], spacer, tiles[1], spacer, tiles[2]], axis=1)
    title = np.full((CAPTION, row.shape[1], 3), 255, np.uint8)
    where = f'{name + ": " if name else ""}crop {size}x{size} at x={x}, y={y} of {w}x{h}; PSNR of the crop (Y)'
    cv2.putText(title, where, (4, CAPTION - 7), FONT, 0.38, (60, 60, 60), 1, cv2.LINE_AA)
    return np.concatenate([title, row], axis=0)


def nice_step(span: float, count: int = 5) -> float:
    """A round step (1, 2 or 5 times a power of ten) that cuts ``span`` into about ``count`` parts."""
    raw = max(span, 1e-9) / count
    power = 10 ** np.floor(np.log10(raw))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


def axes(stages: list, bicubic: Optional[float] = None) -> tuple:
    """The chart's scales: each stage's first iteration on one axis of iterations (stages at their true lengths),
    the total, and ticks at round values on both axes: (starts, total, y ticks, x ticks)."""
    values = [p for _, _, points in stages for _, p in points] + ([bicubic] if bicubic is not None else [])
    values = values or [0.0, 1.0]
    step = nice_step(max(values) - min(values) or 1.0, 5)
    lo, hi = np.floor(min(values) / step) * step, np.ceil(max(values) / step) * step
    lo, hi = (lo - step, hi + step) if hi - lo < step else (lo, hi)
    total = max(sum(t for _, t, _ in stages), 1)
    starts = [int(v) for v in np.cumsum([0] + [t for _, t, _ in stages])]
    x_step = nice_step(total, 8)
    y_ticks = [round(float(v), 9) for v in np.arange(lo, hi + step / 2, step)]
    return starts, total, y_ticks, [int(v) for v in np.arange(0, total + 1, x_step)]


def psnr_plot(stages: list, bicubic: Optional[float] = None, title: str = 'validation PSNR (dB)',
              size: Tuple[int, int] = (960, 420)) -> np.ndarray:
    """A line chart of validation PSNR across a schedule: ``stages`` is [(label, total_iter, [(iter, psnr)])], laid
    end to end on an x axis of iterations at their true lengths; ticks at round values on both axes, stage
    boundaries dashed and labelled, the last value written beside its point, ``bicubic`` a horizontal line. Returns
    a uint8 BGR image."""
    w, h = size
    left, right, top, bottom = 64, 96, 36, 100
    img = np.full((h, w, 3), 255, np.uint8)
    starts, total, y_ticks, x_ticks = axes(stages, bicubic)
    lo, hi, step = y_ticks[0], y_ticks[-1], y_ticks[1] - y_ticks[0]

    def at(it, value):
        return (int(left + (w - left - right) * it / total), int(top + (hi - value) / (hi - lo) * (h - top - bottom)))

    grey, dark, blue = (200, 200, 200), (60, 60, 60), (160, 80, 0)
    cv2.putText(img, title, (left, 24), FONT, 0.55, dark, 1, cv2.LINE_AA)
    decimals = max(0, -int(np.floor(np.log10(step))))
    for value in y_ticks:
        y = at(0, value)[1]
        cv2.line(img, (left, y), (w - right, y), (235, 235, 235), 1)
        cv2.putText(img, f'{value:.{decimals}f}', (4, y + 4), FONT, 0.4, dark, 1, cv2.LINE_AA)
    base = h - bottom
    cv2.line(img, (left, base), (w - right, base), dark, 1)
    for it in x_ticks:
        x = at(it, lo)[0]
        cv2.line(img, (x, base), (x, base + 4), dark, 1)
        label = f'{int(it):,}'
        cv2.putText(img, label, (x - 4 * len(label), base + 16), FONT, 0.36, dark, 1, cv2.LINE_AA)
    cv2.putText(img, 'iterations', (w - right - 70, base + 32), FONT, 0.4, dark, 1, cv2.LINE_AA)
    if bicubic is not None:
        y = at(0, bicubic)[1]
        for x in range(left, w - right, 12):
            cv2.line(img, (x, y), (min(x + 6, w - right), y), (0, 0, 200), 1)
        cv2.putText(img, f'bicubic {bicubic:.2f}', (w - right + 4, y + 4), FONT, 0.36, (0, 0, 200), 1, cv2.LINE_AA)
    previous: Optional[Tuple[int, int]] = None
    last: Optional[float] = None
    for i, (label, _, points) in enumerate(stages):
        x0 = at(starts[i], lo)[0]
        for y in range(top, base, 10):  # stage boundary
            cv2.line(img, (x0, y), (x0, y + 5), grey, 1)
        cv2.putText(img, str(i + 1), (x0 + 3, top + 12), FONT, 0.4, dark, 1, cv2.LINE_AA)  # named below
        for it, value in points:
            point = at(starts[i] + min(it, stages[i][1]), value)
            if previous is not None:
                cv2.line(img, previous, point, blue, 2, cv2.LINE_AA)
            cv2.circle(img, point, 3, blue, -1, cv2.LINE_AA)
            previous, last = point, value
    if last is not None and previous is not None:
        cv2.putText(img, f'{last:.2f}', (previous[0] + 6, previous[1] - 6), FONT, 0.45, blue, 1, cv2.LINE_AA)
    legend = '   '.join(f'{i + 1}: {label} ({t:,} iters)' for i, (label, t, _) in enumerate(stages))
    for j, line in enumerate(textwrap.wrap(legend, (w - 2 * left) // 6)[:3]):  # the stages, by their numbers
        cv2.putText(img, line, (left, base + 50 + 15 * j), FONT, 0.36, dark, 1, cv2.LINE_AA)
    return img


def schedule_report(stages: list, out_dir: str, score_folder: str, score_label: str, val_hr: Optional[str] = None,
                    scale: int = 4) -> Tuple[List[str], List[str]]:
    """The closing report of a schedule: the final deployed network scored on ``score_folder`` next to bicubic
    (Markdown lines), ``psnr.png`` (every stage's validation PSNR, the bicubic line of the validation set) and
    ``comparison.png`` (HR | bicubic | PFDN crops of each image, named, with the crops' PSNR), written into
    ``out_dir``. ``stages`` are
    (Experiment, total_iter) in order; ``scale`` the networks'. Returns (lines, [written files])."""


    final = stages[-1][0]
    ckpt = final.network('latest', deployed=True)
    net, _ = build_from_checkpoint(ckpt)
    net.eval()
    bic = evaluate_folder(None, score_folder, scale, bicubic=True)
    sr = evaluate_folder(net, score_folder, scale)
    lines = [f'deployed checkpoint: {ckpt}', f'| x{scale} on {score_label} | PSNR (Y) | SSIM (Y) |',
             '| --- | --- | --- |',
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
    rows = []
    for path in list_images(score_folder):  # a row per image, each named
        hr, lr = bicubic_lr(read_image(path), scale)
        with torch.no_grad():
            result = to_image(net(to_tensor(lr)))
        rows.append(comparison_strip(hr, lr, result, scale, name=os.path.basename(path)))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 8), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    write_image(strip, np.concatenate(rows, axis=0))
    return lines, [plot, strip]
