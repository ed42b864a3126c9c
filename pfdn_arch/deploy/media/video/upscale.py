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
renamed, so the output's name appears only when it is complete; the parts folder is then removed. What made the
output is recorded beside it (``files/made.py``): a rerun keeps it only where the same work made it, makes it again
where other weights or settings did, and leaves alone a file it did not make.
"""
import os
import shutil
from typing import Any, Callable, Optional

from ....errors import OutputExists, PFDNError
from ....files.atomic import hidden_name
from ....files.locks import owned
from ....files.paths import input_file
from ....files.sources import digest
from ....files.made import SAME, UNKNOWN, Made
from .encoding import Encoding
from .mux import join
from .parts import encode_parts
from .plan import Plan
from .probe import Source


def upscale_video(src: str, out_path: str, upscaler: Any, codec: Optional[str] = None, crf: Optional[int] = None,
                  segment: float = 10.0, force: bool = False, settings: Optional[dict] = None,
                  progress: Optional[Callable[..., Any]] = None, note: Callable[[str], None] = print) -> str:
    """Upscale the video ``src`` into ``out_path`` (its container by extension) with an ``upscaler.Upscaler``.
    ``segment``: seconds per resumable segment (0: one segment); ``settings``: what else the frames depend on (the
    weights, backend, dtype, tiles), kept in the plan so that a rerun with others starts over; ``progress(n,
    total=None)``: called with the frame count first, then as frames are written; ``note``: one-line notes.
    Returns 'done', 'again' (``out_path`` was this command's result of other weights or settings, made anew), or
    'kept' when ``out_path`` is already this same work's result (``force`` replaces it)."""
    input_file(src)
    if os.path.exists(out_path) and os.path.samefile(out_path, src):
        raise PFDNError('the output would replace the input; choose another output name', src)
    source = Source(src)
    enc = Encoding(source, out_path, upscaler.scale, codec, crf)
    work = {'input': digest(src), 'encoding': enc.settings(), 'segment': segment, 'run': settings or {}}
    made, outcome = Made(out_path), 'done'
    if os.path.lexists(out_path) and not force:
        verdict = made.verdict(work)
        if verdict == SAME:
            return 'kept'
        if verdict == UNKNOWN:
            raise OutputExists(out_path, 'exists and is not a result this command made of this input; it was left '
                                         'as it is')
        outcome = 'again'
    if progress:
        progress(0, source.frames or None)
    for index, kind, name in source.left_out:
        note(f'note: {src}: its {kind} stream {index} ({name}) is not copied (only the first video, audio and '
             'subtitles are)')
    folder, name = os.path.split(os.path.abspath(out_path))
    with owned(folder, name):
        plan = Plan(os.path.join(folder, hidden_name(folder, name, '.pfdn-parts')), work)
        if plan.discarded:
            note(f'note: {out_path}: segments of an earlier run with another input or settings were discarded')
        elif plan.parts:
            note(f'note: {out_path}: continuing after {len(plan.parts)} finished segment(s) '
                 f'({plan.frames_done} frames) of an earlier run')
        if progress and plan.frames_done:
            progress(plan.frames_done)
        if not plan.complete:
            encode_parts(source, enc, upscaler, plan, segment, progress)
        join(source, enc, plan, out_path, before=lambda tmp: made.record(digest(tmp), work))
        shutil.rmtree(plan.folder, ignore_errors=True)
    return outcome
