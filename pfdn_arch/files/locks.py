"""One run at a time per folder or output: a lock that dies with its process."""
import os
from contextlib import contextmanager
from typing import Iterator, Optional

from ..errors import PFDNError
from .atomic import hidden_name


class InUse(PFDNError):
    """Another run holds the folder (``path``); ``reason`` names its process."""


@contextmanager
def owned(parent: str, name: str, said_as: Optional[str] = None,
          fix: str = 'wait for it to end, or choose another name') -> Iterator[None]:
    """Hold ``parent/name`` (an experiment or results folder, a video being made) for the length of the block: one
    run at a time (a second run of an experiment's name would have BasicSR archive the first one's folder under it
    and write into the new one). The lock is ``parent/.<name>.pfdn-lock``, an OS file lock that dies with its
    process (no stale locks after a kill); where the OS has none (Windows) there is no lock. A second holder's error
    names ``said_as`` (default: ``parent/name``) and says ``fix``."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    os.makedirs(parent, exist_ok=True)
    path = os.path.join(parent, hidden_name(parent, name, '.pfdn-lock'))
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors='replace').strip() or '?'
            raise InUse(f'is in use by another run (process {holder}); {fix}',
                        said_as or os.path.join(parent, name)) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock
