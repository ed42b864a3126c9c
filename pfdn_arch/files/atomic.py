"""Atomic file writing: every file this package writes goes through here (LMDBs are built under ``.partial``
folders and renamed the same way). The data is written to a temporary name in the target's folder, flushed and
fsynced, then renamed over the target (and the folder fsynced), so a kill at any instant leaves the old file or
the new one, never a torn one.

The temporary name is ``.<name>.pfdn-<pid>.tmp``: a name nobody else would pick. A leftover one whose process is
gone (a kill) is removed by the next write of the same target; no other file is ever touched.
"""
import hashlib
import json
import os
import re
from contextlib import contextmanager
from typing import Any, Iterator

TMP = '.{name}.pfdn-{pid}.tmp'


def _name_max(folder):
    try:
        return os.pathconf(folder or '.', 'PC_NAME_MAX')
    except (OSError, ValueError):
        return 255


def _short(name):
    """What stands for a name too long to be part of another name: a digest of it."""
    return 'long-' + hashlib.sha1(os.fsencode(name)).hexdigest()[:16]


def hidden_name(folder: str, name: str, suffix: str) -> str:
    """``.<name><suffix>``, the name of a file of ours beside ``name`` (a lock, a video's parts), with a digest of
    ``name`` in its place where that would pass the filesystem's limit on a name (a valid 240-byte name plus 20
    bytes does not fit in 255)."""
    fits = len(os.fsencode(f'.{name}{suffix}')) <= _name_max(folder)
    return f'.{name if fits else _short(name)}{suffix}'


def _temp_stem(folder, name):
    """What stands for ``name`` in its temporary files' names: itself, or its digest where the longest temporary
    name would not fit."""
    return name if len(os.fsencode(TMP.format(name=name, pid=2 ** 22))) <= _name_max(folder) else _short(name)


# {folder: {temporary name of ours: (its target's stem, pid)}} found there the first time this process wrote into
# the folder. Listed once per folder, not once per file: a folder of n results would otherwise be listed n times (n^2
# names read; 10,000 results, 10^8). A leftover made after that listing (another process killed meanwhile) goes
# with a later run.
_LEFTOVERS: dict = {}
_OURS = re.compile(r'\.(.+)\.pfdn-(\d+)\.tmp')  # TMP's names


def _stale_temps(folder, stem):
    """This package's leftover temporary files of the target whose temporary stem is ``stem`` (``_temp_stem``) in
    ``folder``, whose writing process is gone (each is returned once)."""
    key = os.path.abspath(folder or '.')
    if key not in _LEFTOVERS:
        try:
            entries = os.listdir(folder or '.')
        except OSError:
            entries = []
        _LEFTOVERS[key] = {e: (m[1], int(m[2])) for e in entries if (m := _OURS.fullmatch(e))}
    leftovers = _LEFTOVERS[key]
    stale = [e for e, (of, pid) in leftovers.items() if of == stem and not _alive(pid)]
    for e in stale:
        del leftovers[e]
    return [os.path.join(folder, e) for e in stale]


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path next to ``path``; when the block ends without an exception, it becomes ``path``."""
    folder, name = os.path.split(os.path.abspath(path))
    stem = _temp_stem(folder, name)
    for stale in _stale_temps(folder, stem):
        try:
            os.remove(stale)  # an earlier write of this file whose process was killed
        except OSError:
            pass
    tmp = os.path.join(folder, TMP.format(name=stem, pid=os.getpid()))
    try:
        yield tmp
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
            plain_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_folder(folder)


def plain_permissions(path: str) -> None:
    """Give the file at ``path`` the permissions a plain ``open()`` gives (writers such as safetensors make their
    files 0600)."""
    os.chmod(path, 0o666 & ~_umask())


def _umask():
    """The process's umask, read without changing it where Linux tells it (os.umask can only be read by setting)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


def write_bytes(path: str, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, 'wb') as f:
        f.write(data)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode('utf-8'))


def read_json(path: str) -> Any:
    """The JSON at ``path``, or None where there is none or it does not parse (what a kill can never leave, since
    everything here is written whole, but a hand or another program can): each record's reader checks its shape."""
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def save_torch(obj: Any, path: str) -> None:
    """``torch.save`` to ``path``, atomically."""
    import torch  # here, not above: what writes images and records runs without torch (``infer``)

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
