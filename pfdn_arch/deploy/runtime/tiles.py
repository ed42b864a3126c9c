"""Windows over an image: where tiles (and training sub-images) start, and the weights that blend overlapping
tiles. ESA pools over the whole tile, so tiles are close to, never identical with, a whole-image run: neighbouring
tiles overlap and are blended with linear ramps."""
from typing import List

import numpy as np

from ...archs.pfdn.limits import MIN_INPUT_SIZE
from ...errors import OptionsError


def check_tiles(tile: int, overlap: int) -> None:
    """``--tile`` and ``--tile-overlap`` that tile an image: a tile PFDN can run, neighbours sharing less than half
    of it (one line naming the flag otherwise)."""
    if tile and tile < MIN_INPUT_SIZE:
        raise OptionsError(f"must be at least {MIN_INPUT_SIZE} (PFDN's smallest input), got {tile}", 'tile')
    if tile and not 0 <= overlap < tile // 2:
        raise OptionsError(f'must be in 0..{tile // 2 - 1} for tile {tile}, got {overlap}', 'tile_overlap')


def window_starts(length: int, size: int, step: int, thresh: int = 0) -> List[int]:
    """Start offsets of windows of ``size`` every ``step`` along ``length``; a leftover wider than ``thresh``
    gets one more window flush with the end. A length within one window gives [0]."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, step))
    if length - (starts[-1] + size) > thresh:
        starts.append(length - size)
    return starts


def ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D blending weights: linear ramps over the overlap on sides that have a neighbour tile."""
    w = np.ones(length, np.float32)
    if overlap > 0:
        up = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        if not at_start:
            w[:overlap] = np.minimum(w[:overlap], up)
        if not at_end:
            w[-overlap:] = np.minimum(w[-overlap:], up[::-1])
    return w
