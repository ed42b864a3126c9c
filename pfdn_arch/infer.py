"""Upscaling images with a deployed PFDN: whole-image or tiled, any of fp32/fp16/bf16, any image layout.

Image handling (documented in the README):
- grayscale: replicated to RGB for the network, the result converted back to one channel;
- RGBA / grey+alpha: colour through PFDN, alpha upscaled separately by bicubic interpolation;
- 16-bit PNG/TIFF: read, upscaled and written as 16-bit (values scaled by 65535 instead of 255).
Tiles: ESA pools over the whole tile, so tiled output is not bit-identical to whole-image output; overlapping
tiles are blended with linear ramps over the overlap (BASICSR.md measured about 44 dB agreement with 32 px).
"""
import cv2
import numpy as np
import torch

from .archs.esa import MIN_INPUT_SIZE
from .data.prepare import window_starts

DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}


def resolve_device_dtype(device, dtype, warn=print):
    """Fall back, with a message, where the hardware lacks what was asked for."""
    device = torch.device(device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        warn('note: CUDA is not available; running on the CPU instead')
        device = torch.device('cpu')
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype}")
    if dtype == 'fp16' and device.type != 'cuda':
        warn('note: fp16 needs CUDA (CPU fp16 convolutions are slow and inexact); using fp32')
        dtype = 'fp32'
    if dtype == 'bf16' and device.type == 'cuda' and not torch.cuda.is_bf16_supported():
        warn('note: this GPU has no bf16 support; using fp16')
        dtype = 'fp16'
    return device, dtype


def _ramp(length, overlap, at_start, at_end):
    """1-D blending weights: linear ramps over the overlap on sides that have a neighbour tile."""
    w = np.ones(length, np.float32)
    if overlap > 0:
        ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        if not at_start:
            w[:overlap] = np.minimum(w[:overlap], ramp)
        if not at_end:
            w[-overlap:] = np.minimum(w[-overlap:], ramp[::-1])
    return w


class Upscaler:
    """Callable: 1 x 3 x h x w float tensor in [0, 1] -> upscaled tensor, whole-image or tiled.

    Args:
        net (nn.Module): a deployed PFDN (any module mapping LR to SR with attribute ``upscale``).
        device (str): 'cpu' or 'cuda'. dtype (str): 'fp32', 'fp16' (CUDA) or 'bf16'.
        tile (int): LR tile side; 0 runs the whole image. tile_overlap (int): LR pixels shared by neighbours.
    """

    def __init__(self, net, device='cpu', dtype='fp32', tile=0, tile_overlap=16, warn=print):
        self.device, self.dtype_name = resolve_device_dtype(device, dtype, warn)
        self.dtype = DTYPES[self.dtype_name]
        self.scale = net.upscale
        self.net = net.eval().to(self.device, self.dtype)
        if tile and tile < MIN_INPUT_SIZE:
            raise ValueError(f'--tile must be at least {MIN_INPUT_SIZE} (PFDN\'s smallest input), got {tile}')
        if tile and not 0 <= tile_overlap < tile // 2:
            raise ValueError(f'--tile-overlap must be in 0..{tile // 2 - 1} for tile {tile}, got {tile_overlap}')
        self.tile, self.overlap = tile, tile_overlap

    @torch.inference_mode()
    def __call__(self, x):
        h, w = x.shape[-2:]
        if not self.tile or (h <= self.tile and w <= self.tile):
            return self._run(x)
        s, t, o = self.scale, self.tile, self.overlap
        out = torch.zeros(x.shape[0], 3, h * s, w * s)
        weight = torch.zeros(1, 1, h * s, w * s)
        th, tw = min(t, h), min(t, w)
        for y in window_starts(h, t, t - o):
            for x0 in window_starts(w, t, t - o):
                sr = self._run(x[..., y:y + th, x0:x0 + tw])
                wy = _ramp(th * s, o * s, y == 0, y + th >= h)
                wx = _ramp(tw * s, o * s, x0 == 0, x0 + tw >= w)
                m = torch.from_numpy(np.outer(wy, wx))[None, None]
                out[..., y * s:(y + th) * s, x0 * s:(x0 + tw) * s] += sr * m
                weight[..., y * s:(y + th) * s, x0 * s:(x0 + tw) * s] += m
        return out / weight

    def _run(self, x):
        return self.net(x.to(self.device, self.dtype)).float().cpu()

    def upscale_image(self, img):
        """numpy image as cv2 reads it with IMREAD_UNCHANGED -> upscaled image of the same layout and depth."""
        if img.dtype == np.uint16:
            peak = 65535.0
        elif img.dtype == np.uint8:
            peak = 255.0
        else:
            raise ValueError(f'unsupported pixel type {img.dtype} (8- or 16-bit images only)')
        gray = img.ndim == 2 or img.shape[2] in (1, 2)
        alpha = img[..., -1] if img.ndim == 3 and img.shape[2] in (2, 4) else None
        colour = img if img.ndim == 2 else img[..., :1] if gray else img[..., :3]
        colour = colour.reshape(colour.shape[0], colour.shape[1], -1)
        bgr = np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else colour
        x = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1)).astype(np.float32) / peak)
        sr = self(x[None]).clamp(0, 1)[0].numpy().transpose(1, 2, 0)[:, :, ::-1]
        out = (sr * peak).round().astype(img.dtype)
        if gray:
            out = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)
        if alpha is not None:
            a = cv2.resize(alpha, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_CUBIC)
            out = np.dstack([out if out.ndim == 3 else out[..., None], a])
        return out
