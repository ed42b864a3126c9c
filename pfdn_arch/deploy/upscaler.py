"""Upscaling images with a deployed PFDN on any backend (``backends``): whole images or tiles (``tiles``), in
batches, any image layout:
- grayscale: replicated to RGB for the network, the result converted back to one channel;
- RGBA / grey+alpha: colour through PFDN, alpha upscaled separately by bicubic interpolation;
- 16-bit PNG/TIFF: read, upscaled and written as 16-bit (values scaled by 65535 instead of 255).
"""
import cv2
import numpy as np
import torch

from ..archs.esa import MIN_INPUT_SIZE
from ..errors import OptionsError
from .tiles import ramp, window_starts


class Upscaler:
    """Callable: N x 3 x h x w float tensor in [0, 1] -> upscaled float tensor on the CPU, whole or tiled.

    Args:
        runner (callable): a backend runner (``backends.make_runner``) or any module mapping LR to SR
            with an attribute ``upscale``.
        tile (int): LR tile side; 0 runs the whole image. tile_overlap (int): LR pixels shared by neighbours.
        batch (int): tiles (and, in ``upscale_images``, same-size images) run this many at a time.
    """

    def __init__(self, runner, tile=0, tile_overlap=16, batch=1):
        self.runner, self.scale = runner, runner.upscale
        if tile and tile < MIN_INPUT_SIZE:
            raise OptionsError(f"must be at least {MIN_INPUT_SIZE} (PFDN's smallest input), got {tile}", 'tile')
        if tile and not 0 <= tile_overlap < tile // 2:
            raise OptionsError(f'must be in 0..{tile // 2 - 1} for tile {tile}, got {tile_overlap}', 'tile_overlap')
        if batch < 1:
            raise OptionsError(f'must be at least 1, got {batch}', 'batch')
        self.tile, self.overlap, self.batch = tile, tile_overlap, batch

    @torch.inference_mode()
    def __call__(self, x):
        h, w = x.shape[-2:]
        if not self.tile or (h <= self.tile and w <= self.tile):
            return self._run(x)
        s, t, o = self.scale, self.tile, self.overlap
        out = torch.zeros(x.shape[0], 3, h * s, w * s)
        weight = torch.zeros(1, 1, h * s, w * s)
        th, tw = min(t, h), min(t, w)
        windows = [(y, x0) for y in window_starts(h, t, t - o) for x0 in window_starts(w, t, t - o)]
        for first in range(0, len(windows), self.batch):  # every tile has the same size: they batch
            group = windows[first:first + self.batch]
            tiles = torch.cat([x[..., y:y + th, x0:x0 + tw] for y, x0 in group])
            srs = self._run(tiles).split(x.shape[0])
            for (y, x0), sr in zip(group, srs):
                wy = ramp(th * s, o * s, y == 0, y + th >= h)
                wx = ramp(tw * s, o * s, x0 == 0, x0 + tw >= w)
                m = torch.from_numpy(np.outer(wy, wx))[None, None]
                out[..., y * s:(y + th) * s, x0 * s:(x0 + tw) * s] += sr * m
                weight[..., y * s:(y + th) * s, x0 * s:(x0 + tw) * s] += m
        return out / weight

    def _run(self, x):
        out = self.runner(x).float().cpu()
        if not torch.isfinite(out).all():
            raise ValueError('the network produced NaN or Inf values (are its weights usable?); nothing written')
        return out

    def upscale_image(self, img):
        """numpy image as cv2 reads it with IMREAD_UNCHANGED -> upscaled image of the same layout and depth."""
        return self.upscale_images([img])[0]

    def upscale_images(self, imgs):
        """Several images; those of one size run as one batch (up to ``batch``)."""
        prepared = [to_network(img) for img in imgs]
        outs = [None] * len(imgs)
        by_size = {}
        for i, (x, _) in enumerate(prepared):
            by_size.setdefault(tuple(x.shape), []).append(i)
        for indices in by_size.values():
            for first in range(0, len(indices), 1 if self.tile else self.batch):
                group = indices[first:first + (1 if self.tile else self.batch)]
                srs = self(torch.cat([prepared[i][0] for i in group]))
                for i, sr in zip(group, srs):
                    outs[i] = from_network(sr, prepared[i][1], imgs[i])
        return outs


def to_network(img):
    """cv2 image (gray, BGR, BGRA; 8 or 16 bit) -> (1 x 3 x h x w RGB float tensor, how to undo it)."""
    if img.dtype == np.uint16:
        peak = 65535.0
    elif img.dtype == np.uint8:
        peak = 255.0
    else:
        raise ValueError(f'unsupported pixel type {img.dtype} (8- or 16-bit images only)')
    gray = img.ndim == 2 or img.shape[2] in (1, 2)
    colour = img if img.ndim == 2 else img[..., :1] if gray else img[..., :3]
    colour = colour.reshape(colour.shape[0], colour.shape[1], -1)
    bgr = np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else colour
    x = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1)).astype(np.float32) / peak)
    return x[None], (peak, gray)


def from_network(sr, how, img):
    """3 x H x W SR tensor -> image of ``img``'s layout and depth (alpha upscaled by bicubic interpolation)."""
    peak, gray = how
    out = (sr.clamp(0, 1).numpy().transpose(1, 2, 0)[:, :, ::-1] * peak).round().astype(img.dtype)
    if gray:
        out = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)
    if img.ndim == 3 and img.shape[2] in (2, 4):
        a = cv2.resize(img[..., -1], (out.shape[1], out.shape[0]), interpolation=cv2.INTER_CUBIC)
        out = np.dstack([out if out.ndim == 3 else out[..., None], a])
    return out
