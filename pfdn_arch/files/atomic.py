"""Atomic file writing: every file this package writes goes through here (LMDBs are built under ``.partial``
folders and renamed the same way). The data is written to a temporary name in the target's folder, flushed and
fsynced, then renamed over the target (and the folder fsynced), so a kill at any instant leaves the old file or
the new one, never a torn one.

The temporary name is ``.<name>.pfdn-<pid>.tmp``: a name nobody else would pick. A leftover one whose process is
gone (a kill) is removed by the next write of the same target; no other file is ever touched.
"""
import os
import re
from contextlib import contextmanager

TMP = '.{name}.pfdn-{pid}.tmp'


def _stale_temps(folder, name):
    """This package's leftover temporary files of ``name`` in ``folder`` whose writing process is gone."""
    pattern = re.compile(re.escape(f'.{name}.pfdn-') + r'(\d+)\.tmp')
    try:
        entries = os.listdir(folder)
    except OSError:
        return []
    return [os.path.join(folder, e) for e in entries
            if (m := pattern.fullmatch(e)) and not _alive(int(m[1]))]


@contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; when the block ends without an exception, it becomes ``path``."""
    folder, name = os.path.split(os.path.abspath(path))
    for stale in _stale_temps(folder, name):
        try:
            os.remove(stale)  # an earlier write of this file whose process was killed
        except OSError:
            pass
    tmp = os.path.join(folder, TMP.format(name=name, pid=os.getpid()))
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
        os.kill(pid, 0)
    except ProcessLookupError:
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
