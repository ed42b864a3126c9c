"""Ctrl-C and SIGTERM, never lost and never fatal.

The commands' handler (``handle_signals``) raises KeyboardInterrupt where the signal lands, and also remembers that a
stop was asked (``request``). Python loses an exception raised while it runs a finalizer (``__del__``, a weakref
callback: "Exception ignored in ..."), so a signal that lands there would be dropped and the run go on; the long
loops therefore ask ``check`` at every step (a training iteration, an image, a film's frame, an LMDB's batch), which
raises KeyboardInterrupt again while a stop is pending.

A stop must not be raised while module-level code runs, which is what an import runs (and ``exec`` of a string, as
``dataclasses`` and ``namedtuple`` do inside imports): raised inside the import of a C++ extension whose set-up runs
Python, it killed ``basicsr export`` with SIGSEGV or abort ("terminate called after throwing an instance of
'nanobind::python_error'", onnx's, imported by ``torch.onnx.export``); escaping an ``exec`` of a string, it makes
CPython end the process by SIGINT at its exit even though the command handled it and exited with 130. The handler
reads the stack it is given (its ``frame`` argument): while module-level code runs above the program's own (the
script or ``-m`` module everything runs in), the stop is delivered again a moment later (``RETRY_S``), until that
code is done. docs/troubleshooting.md says so.
Torch-free, imported by every room.
"""
import os
import signal
import threading
from types import FrameType
from typing import Any, Optional, Tuple

STOPS = (signal.SIGINT, signal.SIGTERM)
RETRY_S = 0.05  # how soon a stop that waited for module-level code is delivered again

_requested = threading.Event()
_raised = [0]  # how many times the pending stop was raised (by the handler or ``check``)


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
        _raised[0] += 1
        raise KeyboardInterrupt


def in_module_code(frame: Optional[FrameType]) -> bool:
    """Whether the stack ending at ``frame`` runs module-level code above the program's own (the outermost module
    body: the script, the ``-m`` module): an import, or an ``exec`` of a string. By the documented ``co_name`` of
    module code (``<module>``) and ``f_back``."""
    bodies = 0
    while frame is not None:
        bodies += frame.f_code.co_name == '<module>'
        if bodies == 2:
            return True
        frame = frame.f_back
    return False


def _interrupt(signum: int, frame: Optional[FrameType]) -> None:
    """The commands' handler of Ctrl-C and SIGTERM: the stop is asked, and raised here unless module-level code is
    running, where it is delivered again ``RETRY_S`` later."""
    request()
    if in_module_code(frame):
        _deliver_later(signum, _raised[0])
        return
    _raised[0] += 1
    raise KeyboardInterrupt


def _deliver_later(signum: int, raised: int) -> None:
    """Send ``signum`` to this process again in ``RETRY_S`` seconds, while the stop is still pending, not raised
    since (a loop's ``check`` may have done it: once is enough, a second raise would land in the cleanup of the
    first) and the commands' handler still handles it (a command that ended meanwhile has nothing left to stop)."""
    def again() -> None:
        if _requested.is_set() and _raised[0] == raised and signal.getsignal(signum) is _interrupt:
            os.kill(os.getpid(), signum)
    timer = threading.Timer(RETRY_S, again)
    timer.daemon = True
    timer.start()


def handle_signals() -> Optional[Tuple[Any, ...]]:
    """Ctrl-C and SIGTERM (a scheduler, torchrun, kill) stop a command the same way, through ``_interrupt``; a stop
    already asked of this handler stays pending, else none is. Returns the handlers they replace (None where signals
    cannot be handled: not the main thread)."""
    if signal.getsignal(signal.SIGINT) is not _interrupt:
        reset()
    try:
        return tuple(signal.signal(stop, _interrupt) for stop in STOPS)
    except ValueError:  # not the main thread (called from a library): leave signals alone
        return None


def restore(previous: Optional[Tuple[Any, ...]]) -> None:
    """The handlers ``handle_signals`` replaced, back."""
    if previous is not None:
        for stop, handler in zip(STOPS, previous):
            signal.signal(stop, handler)


def ignore_signals() -> None:
    """The work is done: a signal now has nothing to stop (the interpreter's exit runs to its end)."""
    for stop in STOPS:
        signal.signal(stop, signal.SIG_IGN)
