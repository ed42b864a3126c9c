"""Upscaling images with a deployed PFDN on any backend (``choose``): whole images or tiles (``tiles``), in
batches, any image layout:
- grayscale: replicated to RGB for the network, the result converted back to one channel;
- RGBA / grey+alpha: colour through PFDN, alpha upscaled separately by bicubic interpolation;
- 16-bit PNG/TIFF: read, upscaled and written as 16-bit (values scaled by 65535 instead of 255).

Tiles bound memory: they run a row of tiles (a band) at a time; rows no later band touches are finished and written
into the result in its own dtype, so what is held is the result (uint8/uint16) plus one band of float rows.

The work here is numpy's (the runners take arrays), so images go through without torch imported (``build``: the export cache's route);
tensors given to ``Upscaler`` come back as tensors.
"""
import functools
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ...archs.pfdn.limits import MIN_INPUT_SIZE
from ...errors import OptionsError
from .tiles import check_tiles, ramp, window_starts

BYTES_PER_LR_PIXEL = 2048  # a whole-image forward holds about this much per LR pixel (features, output): estimates


class Upscaler:
    """Callable: N x 3 x h x w float array in [0, 1] -> upscaled float32 array, whole or tiled (a torch tensor in,
    a CPU tensor out); and ``upscale_image(s)`` for images as OpenCV holds them.

    Args:
        runner (callable): a backend runner (``choose.make_runner``) or any module mapping LR to SR
            with an attribute ``upscale``.
        tile (int): LR tile side; 0 runs the whole image. tile_overlap (int): LR pixels shared by neighbours.
        batch (int): tiles (and, in ``upscale_images``, same-size images) run this many at a time.
    """

    def __init__(self, runner: Any, tile: int = 0, tile_overlap: int = 16, batch: int = 1):
        self.runner, self.scale = runner, runner.upscale
        check_tiles(tile, tile_overlap)
        if batch < 1:
            raise OptionsError(f'must be at least 1, got {batch}', 'batch')
        self.tile, self.overlap, self.batch = tile, tile_overlap, batch
        # where the network runs ('cpu' for a module without a device): the work around it is placed by this
        self.device_type = getattr(getattr(runner, 'device', None), 'type', 'cpu')
        # On a CPU the network's cores are the ones that make pixels anyway, so ``run_images`` makes them as soon as
        # the forward is done, reading the result where the runtime left it: OpenVINO's output is not copied out
        # and is read while still in cache (measured: docs/benchmarks.md, "Figures behind the code's choices").
        self.finish_beside_network = self.device_type == 'cpu'

    def with_tile(self, tile: int) -> 'Upscaler':
        """This upscaler in tiles of ``tile`` (0: whole images), on the same runner; the overlap shrinks where a tile
        is too small for it."""
        if tile == self.tile:
            return self
        overlap = min(self.overlap, tile // 2 - 1) if tile else self.overlap
        return Upscaler(self.runner, tile, max(0, overlap), self.batch)

    def tiled(self, h: int, w: int) -> bool:
        return bool(self.tile) and (h > self.tile or w > self.tile)

    def memory_needed(self, h: int, w: int, channels: int = 3, itemsize: int = 1) -> int:
        """Bytes an image of LR size h x w takes to upscale: the result in its own dtype, plus the whole-image
        forward, or one band of tiles (float rows of the result, the tiles' forwards)."""
        s = self.scale
        result = h * s * w * s * channels * itemsize
        if not self.tiled(h, w):
            return result + h * w * BYTES_PER_LR_PIXEL
        th = min(self.tile, h)
        return result + th * s * w * s * 3 * 4 + self.batch * th * min(self.tile, w) * BYTES_PER_LR_PIXEL

    def __call__(self, x: Any) -> Any:
        if not isinstance(x, np.ndarray):  # a torch tensor: the same work on its values, a tensor back
            import torch

            return torch.from_numpy(self(x.detach().to('cpu', torch.float32).numpy()))
        h, w = x.shape[-2:]
        if not self.tiled(h, w):
            return self._run(x)
        out = np.empty((x.shape[0], 3, h * self.scale, w * self.scale), np.float32)

        def rows_done(top, rows):  # rows: N x R x W x 3 float RGB
            out[:, :, top:top + rows.shape[1]] = rows.transpose(0, 3, 1, 2)
        self._bands(h, w, lambda y, x0, th, tw: x[..., y:y + th, x0:x0 + tw], x.shape[0], rows_done)
        return out

    def _run(self, x: np.ndarray, use: Optional[Callable[[np.ndarray], object]] = None):
        """The runner's result on ``x`` (float32, checked finite); with ``use``, ``use(result)``, called while the
        runtime's output memory is still this call's (``Runner.with_output``): a ``use`` that makes pixels reads
        the result where it is, no copy."""
        with_output = getattr(self.runner, 'with_output', None)  # a runner; any other module is just called
        if use is None or with_output is None:
            out = _checked(self.runner(x))
            return out if use is None else use(out)
        return with_output(x, lambda out: use(_checked(out)))

    def _bands(self, h, w, tile_at, n, rows_done):
        """Run the tiles of an h x w LR input a band (a row of tiles) at a time. ``tile_at(y, x, th, tw)`` gives an
        N x 3 x th x tw tile; ``rows_done(top, rows)`` receives each run of finished result rows (N x R x W*s x 3,
        float RGB), top to bottom. Overlaps are blended with linear ramps normalized by their sum, which is
        separable (a grid of tiles), so every tile's share is known when it runs."""
        s, t, o = self.scale, self.tile, self.overlap
        th, tw = min(t, h), min(t, w)
        ys, xs = window_starts(h, t, t - o), window_starts(w, t, t - o)
        wy = {y: ramp(th * s, o * s, y == 0, y + th >= h) for y in ys}
        wx = {x0: ramp(tw * s, o * s, x0 == 0, x0 + tw >= w) for x0 in xs}
        sy, sx = np.zeros(h * s, np.float32), np.zeros(w * s, np.float32)
        for y in ys:
            sy[y * s:(y + th) * s] += wy[y]
        for x0 in xs:
            sx[x0 * s:(x0 + tw) * s] += wx[x0]
        carry = None
        for k, y in enumerate(ys):
            band = np.zeros((n, th * s, w * s, 3), np.float32)
            if carry is not None:
                band[:, :carry.shape[1]] = carry
            row_w = (wy[y] / sy[y * s:(y + th) * s])[None, :, None, None]
            for first in range(0, len(xs), max(1, self.batch // n)):  # a band's tiles share one size: they batch
                group = xs[first:first + max(1, self.batch // n)]
                srs = self._run(np.concatenate([tile_at(y, x0, th, tw) for x0 in group]))
                for j, x0 in enumerate(group):
                    col_w = (wx[x0] / sx[x0 * s:(x0 + tw) * s])[None, None, :, None]
                    band[:, :, x0 * s:(x0 + tw) * s] += srs[j * n:(j + 1) * n].transpose(0, 2, 3, 1) * row_w * col_w
            end = ys[k + 1] * s if k + 1 < len(ys) else (y + th) * s  # rows below this one get more tiles
            rows_done(y * s, band[:, :end - y * s])
            carry = band[:, end - y * s:]

    def upscale_image(self, img: np.ndarray) -> np.ndarray:
        """numpy image as cv2 reads it with IMREAD_UNCHANGED -> upscaled image of the same layout and depth."""
        return self.upscale_images([img])[0]

    def upscale_images(self, imgs: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Several images; those of one size run as one batch (up to ``batch``); tiled ones one at a time, into a
        result of their own dtype."""
        outs: List[Any] = [None] * len(imgs)
        by_size: Dict[Tuple[int, int], List[int]] = {}
        for i, img in enumerate(imgs):
            by_size.setdefault(img.shape[:2], []).append(i)
        for (h, w), indices in by_size.items():
            for first in range(0, len(indices), 1 if self.tiled(h, w) else self.batch):
                group = indices[first:first + (1 if self.tiled(h, w) else self.batch)]
                for i, finish in zip(group, self.run_images([imgs[i] for i in group])):
                    outs[i] = finish()
        return outs

    def run_images(self, imgs: Sequence[np.ndarray]) -> List[Callable[[], np.ndarray]]:
        """Run same-size images as one batch (or one tiled image); returns, per image, a call that gives its
        pixels (its layout and depth). Where the network runs on a GPU the pixels are made by that call, so that
        this (CPU work) is done elsewhere, e.g. on the thread that encodes the result, while the next images run;
        on a CPU (``finish_beside_network``) they are made here, from the runtime's own output memory (see
        ``__init__``)."""
        h, w = imgs[0].shape[:2]
        if self.tiled(h, w):
            out = self._tiled_image(imgs[0])
            return [lambda: out]
        prepared = [to_network(img) for img in imgs]
        x = np.concatenate([x for x, _ in prepared])
        if self.finish_beside_network:
            pixels = self._run(x, lambda srs: [from_network(sr, how, img) for (_, how), sr, img in
                                               zip(prepared, srs, imgs)])
            return [functools.partial(_same, done) for done in pixels]
        srs = self(x)
        return [functools.partial(from_network, sr, how, img) for (_, how), sr, img in zip(prepared, srs, imgs)]

    def _tiled_image(self, img):
        h, w = img.shape[:2]
        s = self.scale
        peak, gray, alpha = layout(img)
        channels = (1 if gray else 3) + alpha
        out = np.empty((h * s, w * s) + ((channels,) if channels > 1 else ()), img.dtype)
        colour = out if channels == 1 else out[..., :channels - alpha] if alpha else out

        def rows_done(top, rows):
            pixels = to_pixels(rows[0], peak, gray, img.dtype)
            colour[top:top + pixels.shape[0]] = pixels if colour.ndim == pixels.ndim else pixels[..., None]
        self._bands(h, w, lambda y, x0, th, tw: to_network(img[y:y + th, x0:x0 + tw])[0], 1, rows_done)
        if alpha:
            out[..., -1] = cv2.resize(img[..., -1], (w * s, h * s), interpolation=cv2.INTER_CUBIC)
        return out


def _same(value: Any) -> Any:
    return value


def _checked(out) -> np.ndarray:
    """A runner's result as a float32 array, refused if not finite."""
    if not isinstance(out, np.ndarray):  # the torch runners' tensors (on their device, in their precision)
        out = out.float().cpu().numpy()
    # finite exactly where OpenCV's sum is (it adds in float64, which no float32 values overflow): one pass, the
    # cheapest check measured, and every result pays it (docs/benchmarks.md, "Figures behind the code's choices")
    if not np.isfinite(cv2.sumElems(out.reshape(-1, out.shape[-1]))[0]):
        raise ValueError('the network produced NaN or Inf values (are its weights usable?); nothing written')
    return out


def layout(img: np.ndarray) -> Tuple[float, bool, bool]:
    """(peak value, grey, has alpha) of a cv2 image (gray, gray+alpha, BGR, BGRA; 8 or 16 bit)."""
    if img.dtype == np.uint16:
        peak = 65535.0
    elif img.dtype == np.uint8:
        peak = 255.0
    else:
        raise ValueError(f'unsupported pixel type {img.dtype} (8- or 16-bit images only)')
    channels = 1 if img.ndim == 2 else img.shape[2]
    return peak, channels in (1, 2), channels in (2, 4)


def to_network(img: np.ndarray) -> Tuple[np.ndarray, tuple]:
    """cv2 image (gray, gray+alpha, BGR, BGRA; 8 or 16 bit) -> (1 x 3 x h x w RGB float32 array, how to undo it)."""
    peak, gray, _ = layout(img)
    colour = img if img.ndim == 2 else img[..., :1] if gray else img[..., :3]
    colour = colour.reshape(colour.shape[0], colour.shape[1], -1)
    bgr = np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else colour
    x = np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1)).astype(np.float32) / np.float32(peak)
    return x[None], (peak, gray)


def _scaled(values, peak, dtype):
    """float values in [0, 1] (beyond: clipped) -> ``dtype`` at ``peak``, rounded half to even: OpenCV's saturating
    multiply in one pass, the same integers as clipping, scaling and rounding in numpy (tested at every half-way
    value) in a fraction of its time; on two cores shared with the network every result pays it (docs/benchmarks.md,
    "Figures behind the code's choices")."""
    return cv2.multiply(values, (peak,) * 4, dtype=cv2.CV_8U if dtype == np.uint8 else cv2.CV_16U)  # every channel


def to_pixels(rgb: np.ndarray, peak: float, gray: bool, dtype: Any) -> np.ndarray:
    """H x W x 3 float RGB in [0, 1] -> pixels of ``dtype``: BGR, or one channel for a grey image."""
    return cv2.cvtColor(_scaled(np.ascontiguousarray(rgb), peak, dtype),
                        cv2.COLOR_RGB2GRAY if gray else cv2.COLOR_RGB2BGR)


def from_network(sr: Any, how: tuple, img: np.ndarray) -> np.ndarray:
    """3 x H x W SR array (or CPU tensor) -> image of ``img``'s layout and depth (alpha upscaled by bicubic
    interpolation)."""
    peak, gray = how
    # R, G, B planes: each converted whole, then interleaved as B, G, R
    planes = np.ascontiguousarray(np.asarray(sr, np.float32))
    out = cv2.merge([_scaled(planes[c], peak, img.dtype) for c in (2, 1, 0)])
    if gray:
        out = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)
    if img.ndim == 3 and img.shape[2] in (2, 4):
        a = cv2.resize(img[..., -1], (out.shape[1], out.shape[0]), interpolation=cv2.INTER_CUBIC)
        out = np.dstack([out if out.ndim == 3 else out[..., None], a])
    return out
