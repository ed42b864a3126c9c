"""Benchmark protocol of METHOD.md: LR by BasicSR's MATLAB-style ``imresize``, PSNR/SSIM on Y with crop = scale.

Used by tests, benchmarks and the smoke schedule to score a network on a folder of HR images without preparing
any LR files first.
"""
import glob
import os

import cv2
import numpy as np
import torch

from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils.matlab_functions import imresize

from .images import read_image

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def list_images(folder):
    return sorted(p for p in glob.glob(os.path.join(folder, '*')) if p.lower().endswith(IMAGE_EXTS))


def mod_crop(img, scale):
    h, w = img.shape[:2]
    return img[:h - h % scale, :w - w % scale]


def make_lr(hr, scale):
    """HR uint8 BGR image -> (mod-cropped HR, LR uint8) by MATLAB-style bicubic, rounded to 8 bits as the
    benchmark's LR PNG files are."""
    hr = mod_crop(hr, scale)
    lr = imresize(hr.astype(np.float32) / 255.0, 1 / scale)
    return hr, (np.clip(lr, 0, 1) * 255.0).round().astype(np.uint8)


def to_tensor(img_bgr):
    """HWC BGR float [0,1] -> 1x3xHxW RGB tensor."""
    return torch.from_numpy(np.ascontiguousarray(img_bgr[:, :, ::-1].transpose(2, 0, 1))).float().unsqueeze(0)


def to_image(t):
    """1x3xHxW RGB tensor -> HWC BGR uint8 (rounded, like BasicSR's tensor2img)."""
    arr = t.detach().float().clamp_(0, 1).squeeze(0).cpu().numpy().transpose(1, 2, 0)[:, :, ::-1]
    return (arr * 255.0).round().astype(np.uint8)


@torch.no_grad()
def evaluate_folder(upscaler, hr_folder, scale=4, limit=None, bicubic=False):
    """Mean PSNR/SSIM (Y, crop ``scale``) of ``upscaler`` on the images of ``hr_folder``.

    Args:
        upscaler (callable): 1x3xhxw tensor -> 1x3x(sh)x(sw) tensor; ignored when ``bicubic``.
        bicubic (bool): Score MATLAB-style bicubic upsampling instead (the reference row).

    Returns:
        dict with 'psnr', 'ssim' and 'n'.
    """
    paths = list_images(hr_folder)[:limit]
    if not paths:
        raise FileNotFoundError(f'no images in {hr_folder}')
    psnr, ssim = [], []
    for path in paths:
        hr, lr = make_lr(read_image(path, cv2.IMREAD_COLOR), scale)
        lr = lr.astype(np.float32) / 255.0
        if bicubic:
            sr = (np.clip(imresize(lr, scale), 0, 1) * 255.0).round().astype(np.uint8)
        else:
            sr = to_image(upscaler(to_tensor(lr)))
        psnr.append(calculate_psnr(sr, hr, crop_border=scale, test_y_channel=True))
        ssim.append(calculate_ssim(sr, hr, crop_border=scale, test_y_channel=True))
    return {'psnr': float(np.mean(psnr)), 'ssim': float(np.mean(ssim)), 'n': len(paths)}
