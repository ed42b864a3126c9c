"""Atomic file writing: every file this package writes goes through here (LMDBs are built under ``.partial``
folders and renamed the same way). The data is written to a temporary name in the target's folder, flushed and
fsynced, then renamed over the target (and the folder fsynced), so a kill at any instant leaves the old file or
the new one, never a torn one. A leftover temporary file (``.<name>.<pid>.tmp``, hidden and not an image or
checkpoint name) is removed by the next write of the same target.
"""
import glob
import os
from contextlib import contextmanager


@contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; when the block ends without an exception, it becomes ``path``."""
    folder, name = os.path.split(os.path.abspath(path))
    for stale in glob.glob(os.path.join(glob.escape(folder), f'.{glob.escape(name)}.*.tmp')):
        if not _alive(stale.rsplit('.', 2)[-2]):
            try:
                os.remove(stale)  # an earlier write of this file whose process was killed
            except OSError:
                pass
    tmp = os.path.join(folder, f'.{name}.{os.getpid()}.tmp')
    try:
        yield tmp
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_folder(folder)


def _alive(pid):
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible everywhere (e.g. Windows); the rename itself is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path, data):
    with atomic_path(path) as tmp, open(tmp, 'wb') as f:
        f.write(data)


def write_text(path, text):
    write_bytes(path, text.encode('utf-8'))


def save_torch(obj, path):
    """``torch.save`` to ``path``, atomically."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
