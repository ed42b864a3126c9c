"""Benchmark protocol of METHOD.md: LR by BasicSR's MATLAB-style ``imresize``, PSNR/SSIM on Y with crop = scale.

Used by tests, benchmarks and the schedule's report to score a network on a folder of HR images without preparing
any LR files first.
"""
import cv2
import numpy as np
import torch

from basicsr.metrics import calculate_psnr, calculate_ssim

from .images import bicubic_lr, bicubic_upscale, list_images, read_image, to_image, to_tensor


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
        hr, lr = bicubic_lr(read_image(path, cv2.IMREAD_COLOR), scale)
        sr = bicubic_upscale(lr, scale) if bicubic else to_image(upscaler(to_tensor(lr)))
        psnr.append(calculate_psnr(sr, hr, crop_border=scale, test_y_channel=True))
        ssim.append(calculate_ssim(sr, hr, crop_border=scale, test_y_channel=True))
    return {'psnr': float(np.mean(psnr)), 'ssim': float(np.mean(ssim)), 'n': len(paths)}
