"""Where the console commands ``basicsr`` and ``pfdn`` start (setup.py's entry points; ``python -m pfdn_arch.cli``).

Ctrl-C and SIGTERM are handled from the package's first import in such a process: the start-up hook imports
``pfdn_arch`` while the interpreter starts, which installs the commands' handler there when ``started_as_command``
(a stop that lands then waits for the import to end: ``stopping``), and the command line is imported only after it.
A Ctrl-C in the first instants so says one line instead of a traceback through half-done imports. Nothing else is
imported here.
"""
import os
import sys

COMMANDS = ('basicsr', 'pfdn')  # the console scripts (setup.py)


def started_as_command() -> bool:
    """Whether this interpreter was started to run a console command: its script is ``basicsr`` or ``pfdn``, or it
    runs ``-m pfdn_arch.cli`` (read off ``sys.argv``, which the interpreter sets before its start-up hooks run)."""
    script = os.path.basename(sys.argv[0]) if sys.argv else ''
    if os.path.splitext(script)[0] in COMMANDS:
        return True
    argv = getattr(sys, 'orig_argv', [])
    return any(a == '-m' and b == 'pfdn_arch.cli' for a, b in zip(argv, argv[1:]))


def console() -> None:
    """Run the command ``sys.argv`` names and exit with its status (130 when interrupted)."""
    from . import stopping  # here, not above: ``started_as_command`` is asked by every interpreter's start-up hook

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
