"""Every path argument checked before work starts, by one helper per kind: an input must be a regular file (a FIFO
blocks a reader forever, a link to a device reads without end), an output folder or file must be creatable and
writable where it is meant to go, with room for what will be written. Each failure is a ``PathError`` naming the path
and the reason."""
import errno
import os
import shutil
import stat
from typing import Optional

from ..errors import PFDNError

MIN_FREE = 16 << 20  # below this a folder is full for any practical purpose


class PathError(PFDNError):
    """A path argument that cannot serve: ``path`` is it, ``reason`` why."""


def _kind(mode):
    for test, name in ((stat.S_ISFIFO, 'a FIFO (named pipe)'), (stat.S_ISCHR, 'a character device'),
                       (stat.S_ISBLK, 'a block device'), (stat.S_ISSOCK, 'a socket'), (stat.S_ISDIR, 'a folder')):
        if test(mode):
            return name
    return 'not a regular file'


def input_file(path: str) -> str:
    """``path`` if it is a readable regular file (links followed)."""
    if not path:
        raise PathError('an empty path was given')
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise PathError('is a broken link', path) from None
        raise PathError('not found', path) from None
    except OSError as err:
        raise PathError(f'cannot be read ({err.strerror})', path) from None
    if not stat.S_ISREG(st.st_mode):
        raise PathError(f'is {_kind(st.st_mode)}, not a file to read', path)
    if not os.access(path, os.R_OK):
        raise PathError('cannot be read (permission denied)', path)
    return path


def _existing_ancestor(path):
    """The nearest ancestor of ``path`` that exists (the one a ``makedirs`` would start from)."""
    current = os.path.abspath(path)
    while not os.path.lexists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def _writable_parent(path, role):
    """Check that ``path`` can be created where it is: no file in the way, writable, not full."""
    ancestor = _existing_ancestor(path)
    if os.path.islink(ancestor) and not os.path.exists(ancestor):
        raise PathError('is a broken link', ancestor)
    if not os.path.isdir(ancestor):
        raise PathError(f'cannot be made: {ancestor} is a file, not a folder', path)
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PathError(f'cannot be written ({ancestor} is read-only)', path)
    return ancestor


def free_bytes(folder: str) -> Optional[int]:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _room(path, where, need_bytes):
    free = free_bytes(where)
    need = max(need_bytes or 0, MIN_FREE)
    if free is not None and free < need:
        raise PathError(f'not enough room: about {need / 2**20:,.0f} MB needed, {free / 2**20:,.0f} MB free', path)


def output_dir(path: str, need_bytes: int = 0) -> str:
    """``path`` if it is, or can be made as, a writable folder with ``need_bytes`` free. Nothing is created."""
    if not path:
        raise PathError('an empty path was given for the output folder')
    if os.path.islink(path) and not os.path.exists(path):
        raise PathError('is a broken link', path)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise PathError('is a file; give a folder for the results', path)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PathError('cannot be written (read-only)', path)
        where = path
    else:
        where = _writable_parent(path, 'folder')
    _room(path, where, need_bytes)
    return path


def output_file(path: str, need_bytes: int = 0) -> str:
    """``path`` if a file can be written there (its folder existing or creatable, writable, with room)."""
    if not path:
        raise PathError('an empty path was given for the output file')
    if os.path.isdir(path):
        raise PathError('is a folder; give the file to write', path)
    if os.path.islink(path) and not os.path.exists(path):
        raise PathError('is a broken link', path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(folder):
        if not os.path.isdir(folder):
            raise PathError(f'cannot be written: {folder} is a file, not a folder', path)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PathError(f'cannot be written ({folder} is read-only)', path)
        where = folder
    else:
        where = _writable_parent(folder, 'file')
    _room(path, where, need_bytes)
    return path


def disk_full(err: OSError) -> bool:
    """Whether an OSError is the disk (or quota) running out."""
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def refused(err: OSError) -> PathError:
    """The one line an OSError of the system's becomes (a full or read-only disk, a permission): the path and what
    to do, for whatever wrote or read it without a check of its own."""
    where = err.filename or ''
    if disk_full(err):
        free = free_bytes(os.path.dirname(os.path.abspath(where)) if where else '.')
        room = f' ({free / 2**20:,.0f} MB free)' if free is not None else ''
        return PathError(f'the disk is full{room}; what was finished is kept: make room and rerun the same command',
                         where or None)
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PathError(f'cannot be written ({err.strerror}); choose a folder you can write to', where or None)
    return PathError(f'{err.strerror or err}', where or None)
