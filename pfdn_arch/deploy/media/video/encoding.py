"""How the output is encoded (``Encoding``): the container by extension, the encoder (the input's codec where the
container holds it), pixel format, quality, matrix and range; and which segment container joins into it, found by
doing it in memory."""
import functools
import io
import os
from typing import Any, Optional, Tuple

import numpy as np

from ....errors import OptionsError
from .containers import MUXERS, codecs_held, kept_scheduling, pyav, template_stream
from .probe import conversion

# --codec names -> FFmpeg encoders
CODECS = {'h264': 'libx264', 'x264': 'libx264', 'avc': 'libx264', 'h265': 'libx265', 'hevc': 'libx265',
          'x265': 'libx265', 'av1': 'libsvtav1', 'vp9': 'libvpx-vp9', 'ffv1': 'ffv1', 'x264rgb': 'libx264rgb',
          'prores': 'prores_ks'}
# the input's codec -> the encoder used for it by default (others get libx264)
ENCODER_FOR = {'h264': 'libx264', 'hevc': 'libx265', 'av1': 'libsvtav1', 'vp9': 'libvpx-vp9', 'ffv1': 'ffv1',
               'prores': 'prores_ks'}
# constant quality per encoder: (default crf, options). x264 at crf 18 keeps every frame of a panned photo close to
# the network's frames in 4:2:0 (with exact colour conversion, ``conversion``); the others are their encoders' usual
# "visually lossless" values. The presets are fast ones: on a CPU the encoder shares the cores with the network. x264
# gets veryfast's lookahead and macroblock tree with superfast's search (diamond motion search, subme 1), and does not
# split macroblocks (partitions=none): less of the encoder's time for files of the same PSNR (docs/video.md has the
# figures, and the settings tried and not taken).
QUALITY = {'libx264': (18, {'preset': 'veryfast', 'x264-params': 'me=dia:subme=1:partitions=none'}),
           'libx264rgb': (18, {'preset': 'veryfast'}),
           'libx265': (20, {'preset': 'fast'}), 'libsvtav1': (30, {'preset': '8'}),
           'libvpx-vp9': (24, {'b': '0', 'deadline': 'realtime', 'cpu-used': '6'})}
# lossless encoders get RGB (8-bit, deeper) so that frames come back exactly as the network made them
RGB_FORMATS = {'ffv1': ('bgr0', 'gbrp16le'), 'libx264rgb': ('bgr24', 'bgr24')}
# the segments' containers, in order of preference: QuickTime and MP4 keep any time base (VFR timestamps exactly);
# Matroska (millisecond timestamps) holds what they do not (VP9 and AV1 in .mov)
SEGMENT_CONTAINERS = ('mov', 'mp4', 'matroska')
# encoders tried for an output whose container cannot hold the input's codec, in order
FALLBACK_ENCODERS = ('libx264', 'libvpx-vp9')



class Encoding:
    """How the output is written: container (by the output's extension), encoder, pixel format, options; checked
    against what the container holds. ``codec``: a name from ``CODECS`` or an FFmpeg encoder (None: the input's
    codec where this can encode it and the container holds it, else H.264); ``crf``: constant quality."""

    def __init__(self, source: Any, out_path: str, scale: int, codec: Optional[str] = None,
                 crf: Optional[int] = None):
        av = pyav()
        ext = os.path.splitext(out_path)[1].lower()
        if ext not in MUXERS:
            raise OptionsError(f'{ext or "no extension"} is not a video container this writes ({", ".join(MUXERS)})',
                               'output')
        self.muxer = MUXERS[ext]
        holds = codecs_held(self.muxer)
        if codec:
            encoder = CODECS.get(codec.lower(), codec)
            try:
                found = av.Codec(encoder, 'w')
            except Exception:
                raise OptionsError(f'{codec!r} is not a video encoder here; choose one of {", ".join(CODECS)}',
                                   'codec') from None
            if found.type != 'video':
                raise OptionsError(f'{codec!r} is a {found.type} encoder, not a video one', 'codec')
        else:  # the input's codec where this container really holds it, else the first fallback it holds
            wanted = ENCODER_FOR.get(source.codec)
            tried = ([wanted] if wanted else []) + [e for e in FALLBACK_ENCODERS if e != wanted]
            encoder = next((e for e in tried if e in av.codecs_available and segments_for(self.muxer, e)),
                           'libx264')
        found = av.Codec(encoder, 'w')
        self.encoder, self.kind = encoder, found.canonical_name
        self.segment_format = segments_for(self.muxer, encoder)
        if self.segment_format is None:
            raise OptionsError(f'a {ext} file cannot hold {self.kind} video as it is written here (tried: encoded '
                               f'and joined); choose .mkv or .mp4, or another --codec', 'output')
        for _, kind, name in source.copied:
            if holds and name not in holds:
                raise OptionsError(f"a {ext} file cannot hold the input's {kind} stream ({name}), which is copied "
                                   'untouched; choose .mkv (it holds most)', 'output')
        formats = [f.name for f in (found.video_formats or [])]
        if encoder in RGB_FORMATS:
            self.pix_fmt = RGB_FORMATS[encoder][1 if source.deep else 0]
        elif source.pix_fmt in formats and not source.rgb:
            self.pix_fmt = source.pix_fmt
        else:
            deep = [f for f in ('yuv420p10le', 'yuv422p10le') if f in formats]
            self.pix_fmt = deep[0] if source.deep and deep else 'yuv420p' if 'yuv420p' in formats else formats[0]
        self.rgb = self.pix_fmt.startswith(('gbr', 'bgr', 'rgb'))
        self.deep = self.pix_fmt.endswith(('10le', '12le', '16le')) or self.pix_fmt == 'gbrp16le'
        if encoder in QUALITY:
            default, options = QUALITY[encoder]
            self.options = dict(options, crf=str(default if crf is None else crf))
        elif crf is not None:
            raise OptionsError(f'{encoder} has no constant-quality setting (--crf is for '
                               f'{", ".join(sorted(QUALITY))})', 'crf')
        else:
            self.options = {}
        # the input's matrix and range; an RGB input's result is tagged as players assume for its size
        self.matrix = source.matrix if not source.rgb else (1 if source.height * scale >= 720 else 5)
        self.range = source.range if not source.rgb else 1
        self.width, self.height = source.width * scale, source.height * scale

    def settings(self) -> dict:
        return {'encoder': self.encoder, 'pix_fmt': self.pix_fmt, 'options': self.options, 'muxer': self.muxer,
                'size': [self.width, self.height]}

    def frame(self, pixels: np.ndarray, sws: Any = None, threads: int = 0) -> Any:
        """A result (BGR, 8 or 16 bit) as the encoder takes it: this pixel format, matrix and range. ``threads``:
        swscale's (``probe.sws_threads``)."""
        av = pyav()
        # the frame reads the array where it is (from_ndarray copies it first: a core's time taken from the network,
        # docs/benchmarks.md, "Figures behind the code's choices"; swscale's output is the same to the byte)
        frame = av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(pixels),
                                                format='bgr48le' if pixels.dtype.itemsize == 2 else 'bgr24')
        if self.rgb:
            return frame.reformat(format=self.pix_fmt, interpolation=sws or conversion(), threads=threads)
        return frame.reformat(format=self.pix_fmt, dst_colorspace=self.matrix, src_color_range=2,
                              dst_color_range=self.range, interpolation=sws or conversion(), threads=threads)

    def open_part(self, path: str, source: Any) -> Tuple[Any, Any]:
        """An output container at ``path`` with one video stream of this encoding: (container, stream)."""
        av = pyav()
        container = av.open(path, 'w', format=self.segment_format)
        stream = container.add_stream(self.encoder, rate=source.rate, options=self.options)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, self.pix_fmt
        cc = stream.codec_context
        cc.time_base = source.time_base
        if not self.rgb:
            cc.colorspace, cc.color_range = self.matrix, self.range
        if source.primaries:
            cc.color_primaries = source.primaries
        if source.trc:
            cc.color_trc = source.trc
        return container, stream


@functools.lru_cache(maxsize=None)
def segments_for(muxer: str, encoder: str) -> Optional[str]:
    """The first of ``SEGMENT_CONTAINERS`` whose parts made by ``encoder`` join into a ``muxer`` file, found by doing
    it in memory with a few frames (what FFmpeg's codec lists claim is not what muxing does: VP9 in .mov, H.264 with
    B-frames in .avi fail), or None."""
    for segment in SEGMENT_CONTAINERS:
        try:
            with kept_scheduling():
                _probe_join(segment, muxer, encoder)
            return segment
        except Exception:  # any refusal of FFmpeg's: this pair does not work
            continue
    return None


def _probe_join(segment, muxer, encoder, frames=12):
    av = pyav()
    part = io.BytesIO()
    with av.open(part, 'w', format=segment) as c:
        stream = c.add_stream(encoder, rate=25, options=QUALITY.get(encoder, (0, {}))[1])
        formats = [f.name for f in (av.Codec(encoder, 'w').video_formats or [])]
        stream.width = stream.height = 64
        stream.pix_fmt = RGB_FORMATS[encoder][0] if encoder in RGB_FORMATS else (
            'yuv420p' if 'yuv420p' in formats else formats[0])
        noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.roll(noise, i, axis=1), format='bgr24').reformat(
                format=stream.pix_fmt)
            frame.pts = i
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    part.seek(0)
    with av.open(part) as src, av.open(io.BytesIO(), 'w', format=muxer) as out:
        video = template_stream(out, src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is None and packet.pts is None:
                continue
            packet.stream = video
            out.mux(packet)
