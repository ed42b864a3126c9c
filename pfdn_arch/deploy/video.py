"""Videos through the network: ``basicsr infer`` on a film, with PyAV (FFmpeg's libraries in its wheels).

Frames are decoded with their colour matrix and range honoured, upscaled by the same ``Upscaler`` as images (any
backend, dtype, batch and tile), and encoded in the input's matrix and range; the input's frame timestamps are the
output's (variable frame rate included). Audio, subtitle streams are copied as packets, untouched. Decoding,
the network and encoding run on their own threads (bounded queues), so the network is rarely kept waiting.

Long jobs in segments: frames are encoded in segments of ``segment`` seconds of the input's time, each by a fresh
encoder (so it starts on a keyframe) into a complete QuickTime/MP4 file (a format that stores decoding timestamps)
in a hidden folder beside the output, ``.<output name>.pfdn-parts``, whose ``plan.json`` records the finished ones.
A rerun of the same command (same input, same settings) continues after the last finished segment: decoding seeks
before its start and drops the frames before it, which gives the frames a straight decode gives. When all are done
the segments' packets and the copied streams are joined into the output, written under a temporary name and
renamed, so the output's name appears only when it is complete; the parts folder is then removed.
"""
import functools
import heapq
import io
import json
import os
import queue
import shutil
import threading
from fractions import Fraction

import numpy as np

from ..errors import DataError, OptionsError, OutputExists, PFDNError, require
from ..files.atomic import atomic_path, hidden_name, write_text
from ..files.locks import owned
from .queues import put_unless_stopped

# container by file name extension (what this writes; it reads whatever FFmpeg reads)
MUXERS = {'.mp4': 'mp4', '.m4v': 'mp4', '.mov': 'mov', '.mkv': 'matroska', '.webm': 'webm', '.avi': 'avi',
          '.nut': 'nut', '.ts': 'mpegts', '.m2ts': 'mpegts', '.mts': 'mpegts', '.flv': 'flv'}
VIDEO_EXTS = tuple(MUXERS) + ('.mpg', '.mpeg', '.wmv', '.3gp', '.y4m', '.ogv', '.vob')
# --codec names -> FFmpeg encoders
CODECS = {'h264': 'libx264', 'x264': 'libx264', 'avc': 'libx264', 'h265': 'libx265', 'hevc': 'libx265',
          'x265': 'libx265', 'av1': 'libsvtav1', 'vp9': 'libvpx-vp9', 'ffv1': 'ffv1', 'x264rgb': 'libx264rgb',
          'prores': 'prores_ks'}
# the input's codec -> the encoder used for it by default (others get libx264)
ENCODER_FOR = {'h264': 'libx264', 'hevc': 'libx265', 'av1': 'libsvtav1', 'vp9': 'libvpx-vp9', 'ffv1': 'ffv1',
               'prores': 'prores_ks'}
# constant quality per encoder: (default crf, options). x264 at crf 18 keeps every frame of a panned photo above
# 41 dB RGB PSNR from the network's frames in 4:2:0 (with exact colour conversion, ``conversion``); the others are
# their encoders' usual "visually lossless" values. The presets are fast ones: on a CPU the encoder shares the cores
# with the network.
QUALITY = {'libx264': (18, {'preset': 'veryfast'}), 'libx264rgb': (18, {'preset': 'veryfast'}),
           'libx265': (20, {'preset': 'fast'}), 'libsvtav1': (30, {'preset': '8'}),
           'libvpx-vp9': (24, {'b': '0', 'deadline': 'realtime', 'cpu-used': '6'})}
# lossless encoders get RGB (8-bit, deeper) so that frames come back exactly as the network made them
RGB_FORMATS = {'ffv1': ('bgr0', 'gbrp16le'), 'libx264rgb': ('bgr24', 'bgr24')}
# the segments' containers, in order of preference: QuickTime and MP4 keep any time base (VFR timestamps exactly);
# Matroska (millisecond timestamps) holds what they do not (VP9 and AV1 in .mov)
SEGMENT_CONTAINERS = ('mov', 'mp4', 'matroska')
# encoders tried for an output whose container cannot hold the input's codec, in order
FALLBACK_ENCODERS = ('libx264', 'libvpx-vp9')


def conversion():
    """swscale flags for every YUV <-> RGB conversion here: bicubic chroma, exact rounding, full chroma
    interpolation. Its defaults (bilinear, fast rounding, chroma not interpolated) cost a 4:2:0 round trip of an
    upscaled frame 11 dB (40.2 against 51.4 dB PSNR) and darken it by 1.5-2.7 levels, more than the encoder loses."""
    from av.video.reformatter import Interpolation as I
    return I.BICUBIC | I.ACCURATE_RND | I.FULL_CHR_H_INT | I.FULL_CHR_H_INP
SWS_MATRICES = (1, 4, 5, 6, 7, 9, 10)  # matrices swscale converts with (709, FCC, 601 x2, 240M, 2020 x2)


def _av():
    return require('av', 'video input and output', 'video')


def is_video(path):
    return path.lower().endswith(VIDEO_EXTS)


class Source:
    """What a video input holds, checked: its video stream (codec, size, rate, time base, first frame's pixel format,
    colours, rotation), the streams to copy, a frame count for progress. Bad input raises one ``DataError``."""

    def __init__(self, path):
        av = _av()
        self.path = path
        try:
            container = av.open(path)
        except av.FFmpegError as err:
            raise DataError(f'is not a video FFmpeg can read ({_why(err)})', path) from None
        try:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ['no streams']
                raise DataError(f'has no video stream ({", ".join(kinds)} only)', path)
            vs = container.streams.video[0]
            self.codec = vs.codec_context.name if vs.codec_context else 'unknown'
            try:
                first = next(container.decode(vs), None)
            except av.FFmpegError as err:
                raise DataError(f'its video stream ({self.codec}) cannot be decoded by FFmpeg here ({_why(err)})',
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

    def identity(self):
        st = os.stat(self.path)
        return {'path': os.path.abspath(self.path), 'size': st.st_size, 'mtime_ns': st.st_mtime_ns}


def _why(err):
    return getattr(err, 'strerror', None) or str(err).splitlines()[0]


class Encoding:
    """How the output is written: container (by the output's extension), encoder, pixel format, options; checked
    against what the container holds. ``codec``: a name from ``CODECS`` or an FFmpeg encoder (None: the input's
    codec where this can encode it and the container holds it, else H.264); ``crf``: constant quality."""

    def __init__(self, source, out_path, scale, codec=None, crf=None):
        av = _av()
        ext = os.path.splitext(out_path)[1].lower()
        if ext not in MUXERS:
            raise OptionsError(f'{ext or "no extension"} is not a video container this writes ({", ".join(MUXERS)})',
                               'output')
        self.muxer = MUXERS[ext]
        holds = _holds(self.muxer)
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

    def settings(self):
        return {'encoder': self.encoder, 'pix_fmt': self.pix_fmt, 'options': self.options, 'muxer': self.muxer,
                'size': [self.width, self.height]}

    def frame(self, pixels, sws=None):
        """A result (BGR, 8 or 16 bit) as the encoder takes it: this pixel format, matrix and range."""
        av = _av()
        frame = av.VideoFrame.from_ndarray(pixels, format='bgr48le' if pixels.dtype.itemsize == 2 else 'bgr24')
        if self.rgb:
            return frame.reformat(format=self.pix_fmt, interpolation=sws or conversion())
        return frame.reformat(format=self.pix_fmt, dst_colorspace=self.matrix, src_color_range=2,
                              dst_color_range=self.range, interpolation=sws or conversion())

    def open_part(self, path, source):
        """An output container at ``path`` with one video stream of this encoding: (container, stream)."""
        av = _av()
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
def segments_for(muxer, encoder):
    """The first of ``SEGMENT_CONTAINERS`` whose parts made by ``encoder`` join into a ``muxer`` file, found by doing
    it in memory with a few frames (what FFmpeg's codec lists claim is not what muxing does: VP9 in .mov, H.264 with
    B-frames in .avi fail), or None."""
    for segment in SEGMENT_CONTAINERS:
        try:
            _probe_join(segment, muxer, encoder)
            return segment
        except Exception:  # any refusal of FFmpeg's: this pair does not work
            continue
    return None


def _probe_join(segment, muxer, encoder, frames=12):
    av = _av()
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


def template_stream(out, template):
    """``out.add_stream_from_template(template)``; where the template's decoder has no encoder of its name (AV1 is
    decoded by libdav1d), the decoder's context is copied instead (PyAV looks an encoder up by that name)."""
    av = _av()
    try:
        return out.add_stream_from_template(template)
    except av.codec.codec.UnknownCodecError:
        return out.add_stream_from_template(template, opaque=True)


def _holds(muxer):
    """Codec names a container format holds (empty where FFmpeg does not say: then it is not checked)."""
    av = _av()
    container = av.open(io.BytesIO(), 'w', format=muxer)
    try:
        return set(container.supported_codecs)
    finally:
        container.close()


def kept_video(out_path, width, height):
    """None when an existing output is a complete result (a video of the result's size); else why not."""
    av = _av()
    try:
        with av.open(out_path) as c:
            if not c.streams.video:
                return 'it has no video stream'
            vs = c.streams.video[0]
            if (vs.codec_context.width, vs.codec_context.height) != (width, height):
                return f'it is {vs.codec_context.width}x{vs.codec_context.height}, not {width}x{height}'
    except av.FFmpegError as err:
        return f'FFmpeg cannot read it ({_why(err)})'
    return None


class Plan:
    """The parts folder's record: the input's identity and the settings the parts were made with, and the
    finished parts (index, file, frames). Written atomically after each part."""

    def __init__(self, folder, key):
        self.folder, self.key, self.path = folder, key, os.path.join(folder, 'plan.json')
        self.parts, self.discarded = [], False
        if os.path.isfile(self.path):
            try:
                with open(self.path) as f:
                    saved = json.load(f)
            except (OSError, ValueError):
                saved = {}
            if saved.get('key') == key and all(os.path.isfile(os.path.join(folder, p['file']))
                                               for p in saved.get('parts', [])):
                self.parts = saved['parts']
            else:
                self.discarded = True
        if self.discarded or not self.parts:
            shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder, exist_ok=True)

    @property
    def next_part(self):
        return self.parts[-1]['index'] + 1 if self.parts else 0

    @property
    def frames_done(self):
        return sum(p['frames'] for p in self.parts)

    @property
    def complete(self):
        return bool(self.parts) and self.parts[-1].get('last', False)

    def add(self, index, name, frames):
        self.parts.append({'index': index, 'file': name, 'frames': frames})
        self._save()

    def mark_complete(self):
        """Every frame is in the parts (the decoder reached the input's end)."""
        if self.parts:
            self.parts[-1]['last'] = True
            self._save()

    def _save(self):
        write_text(self.path, json.dumps({'key': self.key, 'parts': self.parts}, indent=1))


def upscale_video(src, out_path, upscaler, codec=None, crf=None, segment=10.0, force=False, settings=None,
                  progress=None, note=print):
    """Upscale the video ``src`` into ``out_path`` (its container by extension) with an ``upscaler.Upscaler``.
    ``segment``: seconds per resumable segment (0: one segment); ``settings``: what else the frames depend on (the
    weights, backend, dtype, tiles), kept in the plan so that a rerun with others starts over; ``progress(n,
    total=None)``: called with the frame count first, then as frames are written; ``note``: one-line notes. Returns 'done', or 'kept' when ``out_path`` is already
    a complete result (``force`` replaces it)."""
    from ..files.paths import input_file

    input_file(src)
    if os.path.exists(out_path) and os.path.samefile(out_path, src):
        raise PFDNError('the output would replace the input; choose another output name', src)
    source = Source(src)
    enc = Encoding(source, out_path, upscaler.scale, codec, crf)
    if os.path.exists(out_path) and not force:
        why = kept_video(out_path, enc.width, enc.height)
        if why is None:
            return 'kept'
        raise OutputExists(out_path, f'exists but is not a complete result ({why}); it was left as it is')
    if progress:
        progress(0, source.frames or None)
    for index, kind, name in source.left_out:
        note(f'note: {src}: its {kind} stream {index} ({name}) is not copied (only the first video, audio and '
             'subtitles are)')
    folder, name = os.path.split(os.path.abspath(out_path))
    with owned(folder, name):
        key = {'input': source.identity(), 'encoding': enc.settings(), 'segment': segment, 'run': settings or {}}
        plan = Plan(os.path.join(folder, hidden_name(folder, name, '.pfdn-parts')), key)
        if plan.discarded:
            note(f'note: {out_path}: segments of an earlier run with another input or settings were discarded')
        elif plan.parts:
            note(f'note: {out_path}: continuing after {len(plan.parts)} finished segment(s) '
                 f'({plan.frames_done} frames) of an earlier run')
        if progress and plan.frames_done:
            progress(plan.frames_done)
        if not plan.complete:
            _encode_parts(source, enc, upscaler, plan, segment, progress)
        _join(source, enc, plan, out_path)
        shutil.rmtree(plan.folder, ignore_errors=True)
    return 'done'


def _encode_parts(source, enc, upscaler, plan, segment, progress):
    """Decode from the first unfinished part, run the network, encode each part into its own file."""
    av = _av()
    tb = source.time_base
    per_part = Fraction(segment).limit_denominator(1000) / tb if segment > 0 else None
    start = plan.next_part
    streams = max(1, getattr(upscaler.runner, 'streams', 1))
    frames_q = queue.Queue(2 * streams + 2)
    results, ready = {}, threading.Condition()
    slots = threading.Semaphore(3 * streams + 4)  # frames between decoding and encoding: bounds memory
    stop, raised = threading.Event(), []
    dec_fmt = 'bgr48le' if source.deep or enc.deep else 'bgr24'
    sws = conversion()

    def put(item):
        put_unless_stopped(frames_q, item, stop)

    def decode():
        try:
            with av.open(source.path) as c:
                vs = c.streams.video[0]
                vs.thread_type = 'AUTO'
                if start and per_part:
                    try:
                        c.seek(int(source.origin + start * per_part), stream=vs, backward=True)
                    except av.FFmpegError:
                        pass  # not seekable: decode from the start; the frames before the part are dropped below
                index, last_pts = 0, None
                for frame in c.decode(vs):
                    pts = frame.pts if frame.pts is not None else (
                        0 if last_pts is None else last_pts + max(1, round(1 / (source.rate * tb))))
                    last_pts = pts
                    part = max(0, int((pts - source.origin) // per_part)) if per_part else 0
                    if part < start:
                        continue
                    img = decoded(frame, source, dec_fmt, sws)
                    while not slots.acquire(timeout=0.2):
                        if stop.is_set():
                            return
                    put((index, part, pts, img))
                    index += 1
        except av.FFmpegError as err:
            raised.append(DataError(f'decoding failed part way ({_why(err)})', source.path))
            stop.set()
        except BaseException as err:
            raised.append(err)
            stop.set()
        finally:
            put(None)

    def network():
        try:
            while not stop.is_set():
                try:
                    item = frames_q.get(timeout=0.2)
                except queue.Empty:
                    continue
                if item is None:
                    frames_q.put(None)
                    break
                batch = [item]
                while len(batch) < upscaler.batch:  # frames already decoded join the batch; none is waited for
                    try:
                        more = frames_q.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        frames_q.put(None)
                        break
                    batch.append(more)
                finishes = upscaler.run_images([img for _, _, _, img in batch])
                with ready:
                    for (index, part, pts, _), finish in zip(batch, finishes):
                        results[index] = (part, pts, finish)
                    ready.notify_all()
        except BaseException as err:
            raised.append(err)
            stop.set()
        finally:
            with ready:
                ready.notify_all()

    threads = [threading.Thread(target=decode, daemon=True)] + [
        threading.Thread(target=network, daemon=True) for _ in range(streams)]
    for t in threads:
        t.start()
    writer = _PartWriter(source, enc, plan)
    try:
        index, network_threads = 0, threads[1:]
        while True:
            with ready:  # results are added under this lock: once no network thread is alive, none will come
                while index not in results and not stop.is_set() and any(t.is_alive() for t in network_threads):
                    ready.wait(0.2)
                item = results.pop(index, None)
            if item is None:
                break  # every frame is written, or the run stopped (its error is raised below)
            part, pts, finish = item
            writer.write(part, pts, finish())
            slots.release()
            index += 1
            if progress:
                progress(1)
        if raised:
            raise raised[0]
        writer.finish(last=True)
    finally:
        stop.set()
        writer.abandon()
        for t in threads:
            t.join(timeout=10)


class _PartWriter:
    """Encodes frames in order into the part files; a part is complete (renamed, added to the plan) when the
    first frame of a later part arrives, or at the end."""

    def __init__(self, source, enc, plan):
        self.source, self.enc, self.plan = source, enc, plan
        self.part = self.container = self.stream = self.ctx = None
        self.frames, self.sws = 0, conversion()

    def write(self, part, pts, pixels):
        if part != self.part:
            self.finish()
            self._open(part)
        frame = self.enc.frame(pixels, self.sws)
        frame.pts, frame.time_base = pts, self.source.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def _open(self, part):
        self.part, self.frames = part, 0
        self.name = f"part_{part:06d}.{'mkv' if self.enc.segment_format == 'matroska' else self.enc.segment_format}"
        self.ctx = atomic_path(os.path.join(self.plan.folder, self.name))
        tmp = self.ctx.__enter__()
        self.container, self.stream = self.enc.open_part(tmp, self.source)

    def finish(self, last=False):
        if self.container is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
            self.container.close()
            self.container = None
            self.ctx.__exit__(None, None, None)  # renamed: the part is whole
            self.ctx = None
            self.plan.add(self.part, self.name, self.frames)
        if last:
            self.plan.mark_complete()

    def abandon(self):
        """After an error or an interrupt: the unfinished part is removed (its temporary file), the finished kept."""
        if self.container is not None:
            try:
                self.container.close()
            except Exception:
                pass
            self.container = None
        if self.ctx is not None:
            err = KeyboardInterrupt()
            try:
                self.ctx.__exit__(type(err), err, None)
            except KeyboardInterrupt:
                pass
            self.ctx = None


def _join(source, enc, plan, out_path):
    """The finished parts' video packets and the input's audio/subtitle packets, interleaved by time, into the
    output (atomically)."""
    av = _av()
    if not plan.parts:
        raise DataError('has no frames to write', source.path)
    parts = [os.path.join(plan.folder, p['file']) for p in plan.parts]
    with atomic_path(out_path) as tmp, av.open(parts[0]) as first, av.open(source.path) as inp:
        out = av.open(tmp, 'w', format=enc.muxer)
        try:
            out.metadata.update({k: v for k, v in source.metadata.items() if k not in ('encoder', 'major_brand',
                                                                                       'minor_version',
                                                                                       'compatible_brands')})
            video = template_stream(out, first.streams.video[0])
            video.codec_context.framerate = source.rate  # the rate containers declare (timestamps are the packets' own)
            video.metadata.update(source.video_metadata)
            if source.rotation:
                video.set_display_rotation(source.rotation)
            by_index = {s.index: s for s in inp.streams}
            copied = {i: out.add_stream_from_template(by_index[i]) for i, _, _ in source.copied}
            for i, stream in copied.items():
                stream.metadata.update(by_index[i].metadata)

            def video_packets():
                last = None
                for path in parts:
                    with av.open(path) as c:
                        for packet in c.demux(c.streams.video[0]):
                            if packet.dts is None and packet.pts is None:
                                continue  # the demuxer's end marker
                            t = packet.dts * packet.time_base
                            if last is not None and t <= last:  # where parts meet, decoding delay may overlap
                                packet.dts = int(last / packet.time_base) + 1
                                if packet.pts is not None and packet.dts > packet.pts:
                                    raise PFDNError('its segments cannot be joined (their decoding timestamps '
                                                    'overlap); rerun with --segment 0 (one segment)', out_path)
                                t = packet.dts * packet.time_base
                            last = t
                            yield t, 0, packet

            def copied_packets():
                if not copied:
                    return
                last = {}
                for packet in inp.demux(*[by_index[i] for i in copied]):
                    stamp = packet.dts if packet.dts is not None else packet.pts
                    if stamp is None:
                        if packet.size == 0:
                            continue
                        t = last.get(packet.stream.index, 0)
                    else:
                        t = stamp * packet.time_base
                    last[packet.stream.index] = t
                    yield t, 1, packet

            for _, kind, packet in heapq.merge(video_packets(), copied_packets(), key=lambda x: (x[0], x[1])):
                packet.stream = video if kind == 0 else copied[packet.stream.index]
                out.mux(packet)
        finally:
            out.close()


def decoded(frame, source, fmt='bgr24', sws=None):
    """A decoded frame as the network gets it: BGR (``bgr24``, or ``bgr48le`` for deep video) in the source's
    matrix and range."""
    return frame.to_ndarray(format=fmt, src_colorspace=None if source.rgb else source.matrix,
                            src_color_range=None if source.rgb else source.range, dst_color_range=2,
                            interpolation=sws or conversion())


def frames_of(path):
    """Every frame of a video's first video stream as ``basicsr infer`` decodes it (BGR uint8)."""
    av = _av()
    source = Source(path)
    with av.open(path) as c:
        for frame in c.decode(c.streams.video[0]):
            yield decoded(frame, source)


def video_frames_shapes(path):
    """[(h, w)] of a video's frames (its frame count, estimated where the container does not say), for the
    backends' cost model; [] when it cannot be read (reported when it is run)."""
    try:
        s = Source(path)
    except PFDNError:
        return []
    return [(s.height, s.width)] * max(1, s.frames)
