"""Side-by-side crops for the eye: HR | bicubic | PFDN."""
import cv2
import numpy as np

from basicsr.utils.matlab_functions import imresize


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
    """uint8 BGR HR, LR and SR -> one image: the same detailed crop of HR, bicubic-upscaled LR and SR."""
    bic = (np.clip(imresize(lr.astype(np.float32) / 255.0, scale), 0, 1) * 255.0).round().astype(np.uint8)
    h = min(hr.shape[0], sr.shape[0], bic.shape[0])
    w = min(hr.shape[1], sr.shape[1], bic.shape[1])
    hr, bic, sr = hr[:h, :w], bic[:h, :w], sr[:h, :w]
    (y, x), size = pick_crop(hr, size)
    tiles = [img[y:y + size, x:x + size] for img in (hr, bic, sr)]
    spacer = np.full((size, gap, 3), 255, np.uint8)
    return np.concatenate([tiles[0], spacer, tiles[1], spacer, tiles[2]], axis=1)
