"""Video files by name and container: the extensions read and written, what a container holds, and PyAV (FFmpeg's
libraries in its wheels) imported once, with the one-line reason of its errors."""
import contextlib
import io
import os
from typing import Any, Iterator

from ....errors import require

# container by file name extension (what this writes; it reads whatever FFmpeg reads)
MUXERS = {'.mp4': 'mp4', '.m4v': 'mp4', '.mov': 'mov', '.mkv': 'matroska', '.webm': 'webm', '.avi': 'avi',
          '.nut': 'nut', '.ts': 'mpegts', '.m2ts': 'mpegts', '.mts': 'mpegts', '.flv': 'flv'}
VIDEO_EXTS = tuple(MUXERS) + ('.mpg', '.mpeg', '.wmv', '.3gp', '.y4m', '.ogv', '.vob')


def pyav() -> Any:
    return require('av', 'video input and output', 'video')


def why(err: BaseException) -> str:
    return getattr(err, 'strerror', None) or str(err).splitlines()[0]


def is_video(path: str) -> bool:
    return path.lower().endswith(VIDEO_EXTS)


def template_stream(out: Any, template: Any) -> Any:
    """``out.add_stream_from_template(template)``; where the template's decoder has no encoder of its name (AV1 is
    decoded by libdav1d), the decoder's context is copied instead (PyAV looks an encoder up by that name)."""
    av = pyav()
    try:
        return out.add_stream_from_template(template)
    except av.codec.codec.UnknownCodecError:
        return out.add_stream_from_template(template, opaque=True)


def codecs_held(muxer: str) -> Any:
    """Codec names a container format holds (empty where FFmpeg does not say: then it is not checked)."""
    av = pyav()
    container = av.open(io.BytesIO(), 'w', format=muxer)
    try:
        return set(container.supported_codecs)
    finally:
        container.close()


@contextlib.contextmanager
def kept_scheduling() -> Iterator[None]:
    """The calling thread's scheduling policy as it was before the block. SVT-AV1 (libsvtav1, in PyAV's FFmpeg)
    makes the thread that opens it SCHED_FIFO at priority 99 where it may (as root, e.g. in a container): every
    thread then started by it inherits real-time priority, and on a small machine two busy ones starve the rest
    (seen: a training stage started after an AV1 encode spun forever). Linux only; elsewhere a no-op."""
    if not hasattr(os, 'sched_getscheduler'):
        yield
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if os.sched_getscheduler(0) != policy or os.sched_getparam(0) != param:
            try:
                os.sched_setscheduler(0, policy, param)
            except OSError:
                pass

