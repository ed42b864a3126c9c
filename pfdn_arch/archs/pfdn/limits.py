"""What PFDN's input must be, checked without torch (the runtimes' runners check numpy arrays and tensors alike, and
``basicsr infer`` may run without importing torch: ``deploy.runtime.build``)."""
from typing import Sequence

# the scales PFDN upscales by (its tail's pixel shuffle; the recipe trains each of them)
SCALES = (2, 3, 4)

# ESA's conv2 (3x3, stride 2, no padding) then a 7x7 max-pool: an input side below 15 leaves the pool nothing to read.
MIN_INPUT_SIZE = 15


def check_lr_input(shape: Sequence[int], channels: int = 3, min_input: int = MIN_INPUT_SIZE,
                   name: str = 'PFDN') -> None:
    """ValueError saying why an input of ``shape`` (N x C x H x W) cannot be run by ``name``."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4:
        raise ValueError(f'{name} expects an N x C x H x W input, got shape {shape}')
    if shape[1] != channels:
        raise ValueError(f'{name} expects {channels} input channels, got {shape[1]} (shape {shape}); convert the '
                         'image to RGB first')
    if min(shape[-2:]) < min_input:
        raise ValueError(f'{name} needs an LR input of at least {min_input}x{min_input} pixels, got '
                         f'{shape[-2]}x{shape[-1]}; pad or use a larger image')
