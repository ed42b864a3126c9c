"""Ctrl-C and SIGTERM, never lost. The command line's handler raises KeyboardInterrupt where the signal lands, and
also remembers that a stop was asked (``request``). Python loses an exception raised while it runs a finalizer
(``__del__``, a weakref callback: "Exception ignored in ..."), so a signal that lands there would be dropped and the
run go on; the long loops therefore ask ``check`` at every step (a training iteration, an image, a film's frame, an
LMDB's batch), which raises KeyboardInterrupt again while a stop is pending. Torch-free, imported by every room."""
import threading

_requested = threading.Event()


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
