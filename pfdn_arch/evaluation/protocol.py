"""The benchmark protocol: LR made from HR by MATLAB-style bicubic (BasicSR's ``imresize``) and rounded to 8 bits,
as LR PNG files are; PSNR/SSIM on the Y channel with ``scale`` border pixels cropped (BasicSR's metrics). With it,
the released weights score Set5 x4 32.04 / 0.8932 (docs/method.md). Used by tests, benchmarks and the schedule's
report to score a network on a folder of HR images without preparing LR files first.
"""
from __future__ import annotations

from typing import Callable, Optional

import cv2
import numpy as np
import torch

from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import img2tensor, tensor2img

from ..data.bicubic import bicubic_lr, bicubic_upscale
from ..errors import DataError
from ..files.images import list_images, read_image


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HWC BGR uint8 or float [0, 1] image -> 1 x 3 x H x W RGB float tensor (BasicSR's ``img2tensor``)."""
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img
    return img2tensor(img, bgr2rgb=True, float32=True)[None]


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """1 x 3 x H x W RGB tensor in [0, 1] -> HWC BGR uint8 image (BasicSR's ``tensor2img``: clipped, rounded)."""
    return tensor2img(tensor.detach().float().cpu(), rgb2bgr=True, min_max=(0, 1))


@torch.no_grad()
def evaluate_folder(upscaler: Optional[Callable], hr_folder: str, scale: int = 4, limit: Optional[int] = None,
                    bicubic: bool = False) -> dict:
    """Mean PSNR/SSIM (Y, crop ``scale``) of ``upscaler`` on the images of ``hr_folder``.

    Args:
        upscaler (callable): 1x3xhxw tensor -> 1x3x(sh)x(sw) tensor; ignored when ``bicubic``.
        bicubic (bool): Score MATLAB-style bicubic upsampling instead (the reference row).

    Returns:
        dict with 'psnr', 'ssim' and 'n'.
    """
    paths = list_images(hr_folder)[:limit]
    if not paths:
        raise DataError('no images here', hr_folder)
    psnr, ssim = [], []
    for path in paths:
        hr, lr = bicubic_lr(read_image(path, cv2.IMREAD_COLOR), scale)
        sr = bicubic_upscale(lr, scale) if bicubic or upscaler is None else to_image(upscaler(to_tensor(lr)))
        psnr.append(calculate_psnr(sr, hr, crop_border=scale, test_y_channel=True))
        ssim.append(calculate_ssim(sr, hr, crop_border=scale, test_y_channel=True))
    return {'psnr': float(np.mean(psnr)), 'ssim': float(np.mean(ssim)), 'n': len(paths)}
