"""Encoding a video in parts: decoding from the first unfinished part, the network, and each part encoded into its
own file (a complete container, written atomically), through the read -> run -> write ``pipeline.Pipeline``."""
import contextlib
import itertools
import os
from fractions import Fraction
from typing import Any, Callable, Optional

from ....errors import DataError
from ....files.atomic import atomic_path
from ..pipeline import Pipeline
from .containers import kept_scheduling, pyav, why
from .probe import conversion, decoded, sws_threads


def encode_parts(source: Any, enc: Any, upscaler: Any, plan: Any, segment: float,
                 progress: Optional[Callable[..., Any]] = None) -> None:
    """Decode ``source`` from the first unfinished part of ``plan``, run ``upscaler`` on the frames (batches of what
    is already decoded: no frame is held back), and encode each part of ``segment`` seconds into its own file; a part
    is added to the plan when it is whole. After an error or an interrupt the unfinished part is removed (its
    temporary file), the finished ones are kept."""
    per_part = Fraction(segment).limit_denominator(1000) / source.time_base if segment > 0 else None
    streams = max(1, getattr(upscaler.runner, 'streams', 1))
    fmt = 'bgr48le' if source.deep or enc.deep else 'bgr24'
    threads = sws_threads(upscaler.device_type)
    pipeline = Pipeline(lambda frames: upscaler.run_images([img for _, _, img in frames]), workers=streams,
                        batch=upscaler.batch, batch_key=lambda frame: 0, wait_for_batch=False,
                        ahead=2 * streams + 2, behind=2)
    frames = _decoded_frames(source, plan.next_part, per_part, fmt, threads)
    with contextlib.closing(pipeline.results(frames)) as results:
        # each result is ((part, index, frame), its pixels' finish): grouped by the frames' part
        for part, group in itertools.groupby(results, key=lambda done: done[0][0]):
            _write_part(part, group, source, enc, plan, progress, threads)
    plan.mark_complete()


def _decoded_frames(source, start, per_part, fmt, threads=0):
    """(part, pts, BGR frame) from the first frame of part ``start`` on: decoding seeks before it and drops the
    frames before it, which gives the frames a straight decode gives. ``threads``: swscale's."""
    av, tb, sws = pyav(), source.time_base, conversion()
    try:
        with av.open(source.path) as c:
            vs = c.streams.video[0]
            vs.thread_type = 'AUTO'
            if start and per_part:
                try:
                    c.seek(int(source.origin + start * per_part), stream=vs, backward=True)
                except av.FFmpegError:
                    pass  # not seekable: decode from the start; the frames before the part are dropped below
            last_pts = None
            for frame in c.decode(vs):
                pts = frame.pts if frame.pts is not None else (
                    0 if last_pts is None else last_pts + max(1, round(1 / (source.rate * tb))))
                last_pts = pts
                part = max(0, int((pts - source.origin) // per_part)) if per_part else 0
                if part >= start:
                    yield part, pts, decoded(frame, source, fmt, sws, threads)
    except av.FFmpegError as err:
        raise DataError(f'decoding failed part way ({why(err)})', source.path) from None


def _write_part(part, results, source, enc, plan, progress, threads=0):
    """One part's frames ((frame, finish) in order) encoded into its file, then added to the plan."""
    name = f"part_{part:06d}.{'mkv' if enc.segment_format == 'matroska' else enc.segment_format}"
    sws, count = conversion(), 0
    with atomic_path(os.path.join(plan.folder, name)) as tmp, kept_scheduling():  # whole, or removed on an error
        container, stream = enc.open_part(tmp, source)
        with container:
            for (_, pts, _), finish in results:
                frame = enc.frame(finish(), sws, threads)
                frame.pts, frame.time_base = pts, source.time_base
                for packet in stream.encode(frame):
                    container.mux(packet)
                count += 1
                if progress:
                    progress(1)
            for packet in stream.encode():
                container.mux(packet)
    plan.add(part, name, count)
