"""LR images as the benchmarks make them: the HR cropped to a multiple of the scale, then MATLAB-style bicubic
(BasicSR's ``imresize``), rounded to 8 bits as LR PNG files are. Data preparation makes every LR image here; the
benchmark protocol (``evaluation/protocol.py``) scores on the same LR.
"""
from typing import Tuple

import numpy as np


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop to a multiple of ``scale`` (BasicSR's ``mod_crop``)."""
    from basicsr.data.transforms import mod_crop as basicsr_mod_crop
    return basicsr_mod_crop(img, scale)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """float image in [0, 1] -> uint8, clipped and rounded (as BasicSR's ``tensor2img`` does)."""
    return (np.clip(img, 0, 1) * 255.0).round().astype(np.uint8)


def bicubic_lr(hr: np.ndarray, scale: int) -> Tuple[np.ndarray, np.ndarray]:
    """uint8 BGR HR -> (HR mod-cropped to ``scale``, its LR): the LR of every benchmark and training set here."""
    from basicsr.utils.matlab_functions import imresize

    hr = mod_crop(hr, scale)
    return hr, to_uint8(imresize(hr.astype(np.float32) / 255.0, 1 / scale))


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """uint8 LR -> uint8 MATLAB-style bicubic upscaling: the reference row of the benchmark tables."""
    from basicsr.utils.matlab_functions import imresize

    return to_uint8(imresize(lr.astype(np.float32) / 255.0, scale))
