"""What a video input holds (``Source``: its stream, colours, rotation, the streams to copy), how its frames are
decoded for the network (matrix and range honoured, exact conversion), and whether an existing output is a complete
result."""
import os
from fractions import Fraction
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ....errors import DataError, PFDNError
from .containers import pyav, why


def conversion() -> Any:
    """swscale flags for every YUV <-> RGB conversion here: bicubic chroma, exact rounding, full chroma
    interpolation. Its defaults (bilinear, fast rounding, chroma not interpolated) cost a 4:2:0 round trip of an
    upscaled frame more PSNR than the encoder loses, and darken it (docs/video.md)."""
    from av.video.reformatter import Interpolation as I
    return I.BICUBIC | I.ACCURATE_RND | I.FULL_CHR_H_INT | I.FULL_CHR_H_INP
SWS_MATRICES = (1, 4, 5, 6, 7, 9, 10)  # matrices swscale converts with (709, FCC, 601 x2, 240M, 2020 x2)



class Source:
    """What a video input holds, checked: its video stream (codec, size, rate, time base, first frame's pixel format,
    colours, rotation), the streams to copy, a frame count for progress. Bad input raises one ``DataError``."""

    def __init__(self, path: str):
        av = pyav()
        self.path = path
        try:
            container = av.open(path)
        except av.FFmpegError as err:
            raise DataError(f'is not a video FFmpeg can read ({why(err)})', path) from None
        try:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ['no streams']
                raise DataError(f'has no video stream ({", ".join(kinds)} only)', path)
            vs = container.streams.video[0]
            self.codec = vs.codec_context.name if vs.codec_context else 'unknown'
            try:
                first = next(container.decode(vs), None)
            except av.FFmpegError as err:
                raise DataError(f'its video stream ({self.codec}) cannot be decoded by FFmpeg here ({why(err)})',
                                path) from None
            if first is None:
                raise DataError(f'its video stream ({self.codec}) has no frames FFmpeg can decode', path)
            self.time_base = vs.time_base
            self.rate = vs.average_rate or vs.guessed_rate or Fraction(25)
            self.width, self.height = first.width, first.height
            self.origin = first.pts if first.pts is not None else 0
            self.pix_fmt = first.format.name
            self.deep = max(c.bits for c in first.format.components) > 8
            self.rgb = first.format.name.startswith(('gbr', 'bgr', 'rgb', 'argb', 'abgr'))
            self.matrix = first.colorspace if first.colorspace in SWS_MATRICES else (
                1 if self.height >= 720 else 5)  # unspecified: what players assume (HD 709, SD 601)
            self.range = first.color_range or (2 if self.pix_fmt.startswith('yuvj') else 1)
            self.primaries, self.trc = first.color_primaries, first.color_trc
            self.rotation = int(first.rotation or 0)
            duration = (vs.duration * vs.time_base) if vs.duration else (
                Fraction(container.duration, 1000000) if container.duration else 0)
            self.frames = vs.frames or int(duration * self.rate) or 0
            # (index, kind, codec) of the streams copied, and of those left out; plain data: a closed container's
            # streams are not to be touched
            def described(s):
                return s.index, s.type, (s.codec_context.name if s.codec_context else 'unknown')
            self.copied = [described(s) for s in container.streams if s.type in ('audio', 'subtitle')]
            self.left_out = [described(s) for s in container.streams if s.type not in ('audio', 'subtitle', 'video')
                             or (s.type == 'video' and s.index != vs.index)]
            self.metadata = dict(container.metadata)
            self.video_metadata = {k: v for k, v in vs.metadata.items() if k in ('language', 'title')}
        finally:
            container.close()


def decoded(frame: Any, source: Any, fmt: str = 'bgr24', sws: Any = None, threads: int = 0) -> np.ndarray:
    """A decoded frame as the network gets it: BGR (``bgr24``, or ``bgr48le`` for deep video) in the source's
    matrix and range. ``threads``: swscale's (``sws_threads``)."""
    return frame.to_ndarray(format=fmt, src_colorspace=None if source.rgb else source.matrix,
                            src_color_range=None if source.rgb else source.range, dst_color_range=2,
                            interpolation=sws or conversion(), threads=threads)


def sws_threads(device_type: str) -> int:
    """swscale's threads for the conversions around a network on ``device_type``: 1 where the network runs on the
    CPU, whose cores it already keeps busy (swscale's own slice threads then wait on each other's preempted slices,
    docs/benchmarks.md, "Figures behind the code's choices"); 0 (swscale's choice, a thread per core) where the cores are free."""
    return 1 if device_type == 'cpu' else 0


def frames_of(path: str) -> Iterator[np.ndarray]:
    """Every frame of a video's first video stream as ``basicsr infer`` decodes it (BGR uint8)."""
    av = pyav()
    source = Source(path)
    with av.open(path) as c:
        for frame in c.decode(c.streams.video[0]):
            yield decoded(frame, source)


def video_frames_shapes(path: str) -> List[Tuple[int, int]]:
    """[(h, w)] of a video's frames (its frame count, estimated where the container does not say), for the
    backends' cost model; [] when it cannot be read (reported when it is run)."""
    try:
        s = Source(path)
    except PFDNError:
        return []
    return [(s.height, s.width)] * max(1, s.frames)
