"""Ctrl-C and SIGTERM, never lost and never fatal. The command line's handler raises KeyboardInterrupt where the
signal lands, and also remembers that a stop was asked (``request``). Python loses an exception raised while it runs
a finalizer (``__del__``, a weakref callback: "Exception ignored in ..."), so a signal that lands there would be
dropped and the run go on; the long loops therefore ask ``check`` at every step (a training iteration, an image, a
film's frame, an LMDB's batch), which raises KeyboardInterrupt again while a stop is pending. A KeyboardInterrupt
raised while a module is being imported can kill the process instead (``importing``): there the stop waits for the
import to end (``deliver_later``). Torch-free, imported by every room."""
import importlib._bootstrap
import os
import signal
import sys
import threading
from typing import Callable

_requested = threading.Event()

# how soon a stop that waited for an import is delivered again (the signal handler runs again then)
RETRY_S = 0.05


def request() -> None:
    """A stop was asked (the signal handler's first act)."""
    _requested.set()


def reset() -> None:
    """No stop pending (a command starting)."""
    _requested.clear()


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """KeyboardInterrupt while a stop is pending: the step that asks stops the run, even where the first raise was
    swallowed."""
    if _requested.is_set():
        raise KeyboardInterrupt


def importing() -> bool:
    """Whether this thread (the main one, where signal handlers run) is importing a module. An exception raised there
    can kill the process where the module is a C++ extension whose set-up runs Python: with Ctrl-C landing as
    ``torch.onnx.export`` imported onnx, ``basicsr export`` died of SIGSEGV or of "terminate called after throwing
    an instance of 'nanobind::python_error'" (6 of 62 random-instant runs on a busy 2-core machine; none of 65
    since). importlib holds a lock per module being imported, owned by the importing thread (``_module_locks``);
    where an importlib lacks them, the spec of a module whose code runs is marked ``_initializing``, in any thread.
    Both are importlib's own bookkeeping, read, never changed."""
    locks = getattr(importlib._bootstrap, '_module_locks', None)
    if locks is None:
        return any(getattr(getattr(module, '__spec__', None), '_initializing', False)
                   for module in list(sys.modules.values()))
    me = threading.get_ident()
    return any(getattr(ref(), 'owner', None) == me for ref in list(locks.values()))


def deliver_later(signum: int, handler: Callable) -> None:
    """Send ``signum`` to this process again in ``RETRY_S`` seconds, while the stop is still pending and ``handler``
    still handles it (a command that ended meanwhile has nothing left to stop)."""
    def again() -> None:
        if _requested.is_set() and signal.getsignal(signum) is handler:
            os.kill(os.getpid(), signum)
    timer = threading.Timer(RETRY_S, again)
    timer.daemon = True
    timer.start()
