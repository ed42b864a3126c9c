"""Where the console commands ``basicsr`` and ``pfdn`` start (setup.py's entry points; ``python -m pfdn_arch.cli``).

Ctrl-C and SIGTERM are handled from the first line of the command's own code: the command line is imported only
after the handler is in place (a stop waits for an import to end: ``stopping``), so a Ctrl-C in the first instants
says one line instead of a traceback through half-done imports. Nothing else is imported here.
"""
import sys

from . import stopping


def console() -> None:
    """Run the command ``sys.argv`` names and exit with its status (130 when interrupted)."""
    stopping.handle_signals()
    code = None
    try:
        from .cli.main import main
        code = main()
    except KeyboardInterrupt:  # before the command started, or after its own handling of the stop
        print('interrupted before it started; nothing was done' if code is None else
              'interrupted; rerun the same command to continue where it stopped', file=sys.stderr)
        code = 130
    finally:
        stopping.ignore_signals()  # the work is done: a signal now has nothing to stop, the exit runs to its end
    sys.exit(code)
