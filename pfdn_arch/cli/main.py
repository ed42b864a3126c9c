"""``basicsr`` / ``pfdn``: one program with sub-commands, each a module of this package with ``add_parser`` (its
options; light to import) and ``run`` (the work; imports torch and BasicSR when called). The library raises typed
errors (``pfdn_arch.errors``); only here do they become one ``error: ...`` line (with the flag that would help) and
exit status 2. Ctrl-C and SIGTERM stop cleanly and say how to continue (status 130).
"""
from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys
import threading
from typing import Dict, List, Optional

from .. import stopping
from ..errors import PFDNError
from . import Parser, error_line, export, infer, prepare, profile, reparam, schedule, test, train

COMMANDS = (train, test, schedule, prepare, infer, export, reparam, profile)
# what the training side needs beyond the deployment side's requirements (setup.py's `train` extra)
TRAINING_MODULES = {'basicsr': 'train', 'lmdb': 'train', 'skimage': 'train', 'torchvision': 'train'}
_ends_quickly = False  # set by main() for a command that asks for it (``ends_quickly`` in its defaults): console()


def build_parser() -> argparse.ArgumentParser:
    from ..version import __version__

    p = Parser(prog='basicsr', description='PFDN for BasicSR: train, test, prepare data, upscale, '
                                'export and profile. The same program is installed as `pfdn`.',
                                epilog="run 'basicsr <command> -h' for a command's options")
    p.add_argument('--version', action='version', version=f'pfdn {__version__}')
    sub = p.add_subparsers(dest='command', metavar='<command>', title='commands', parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def command_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Dict[str, str]:
    """{dest: '--flag'} of the options of the command (and step) that ran."""
    flags: Dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = getattr(args, action.dest, None)
            if chosen in action.choices:
                flags.update(command_flags(action.choices[chosen], args))
        elif action.option_strings:
            flags[action.dest] = max(action.option_strings, key=len)
    return flags


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    previous = _stop_on_sigterm()  # first: a Ctrl-C from here on ends with the command's line
    try:
        parser = build_parser()
        if not argv:
            parser.print_help(sys.stderr)
            return 2
        try:
            args = parser.parse_args(argv)
        except SystemExit as end:  # -h, --version, or argparse's own usage error
            return end.code if isinstance(end.code, int) else 2
    except KeyboardInterrupt:
        print('interrupted before it started; nothing was done', file=sys.stderr)
        _restore(previous)
        return 130
    global _ends_quickly
    _ends_quickly = getattr(args, 'ends_quickly', False)
    try:
        import cv2
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # its log lines would double ours
        code = args.func(args) or 0
        return code
    except PFDNError as err:
        _end_progress_bars()
        print(error_line(err, command_flags(parser, args)), file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        missing = (err.name or '').split('.')[0]
        extra = TRAINING_MODULES.get(missing)
        if extra is None:
            raise
        _end_progress_bars()
        print(f'error: basicsr {args.command} needs {missing}, which is not installed: install torch and '
              'torchvision first'
              f", then pip install --no-build-isolation basicsr==1.4.2 and pip install 'pfdn[{extra}]'",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _end_progress_bars()
        print(f'interrupted; {args.on_interrupt}', file=sys.stderr)
        return 130
    finally:
        _restore(previous)


def _restore(previous):
    if previous is not None:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])


def _end_progress_bars():
    """Close progress bars an error interrupted, so the error line starts a line of its own."""
    try:
        from tqdm import tqdm
        for bar in list(getattr(tqdm, '_instances', ())):
            bar.close()
    except Exception:
        pass


def _stop_on_sigterm():
    """SIGTERM (a scheduler, torchrun, kill) stops a command the way Ctrl-C does: cleanly, with what started it
    (stages, data workers) stopped and a line saying how to continue. Both signals also leave the stop pending
    (``stopping``), so the next step of a long loop raises again where the first raise was lost in a finalizer. A
    signal that lands while a module is imported is delivered again once the import is over (``stopping.importing``).
    Returns the previous SIGTERM and SIGINT handlers."""
    def interrupt(signum, frame):
        stopping.request()
        if stopping.importing():  # raised inside an import it can kill the process: the stop waits for its end
            stopping.deliver_later(signum, interrupt)
            return
        raise KeyboardInterrupt
    stopping.reset()
    try:
        return signal.signal(signal.SIGTERM, interrupt), signal.signal(signal.SIGINT, interrupt)
    except ValueError:  # not the main thread (called from a library): leave signals alone
        return None


def console() -> None:
    """The console commands ``basicsr`` and ``pfdn``: ``main()``, then the exit. A command whose work is done once
    it returns (``infer``: every result written and closed, its threads joined) ends without the interpreter's
    teardown of torch and OpenVINO: 0.43 s of a 1.5 s process that only imports them, and with the rest of this
    change 6.9 -> 5.3-5.9 s for ``infer`` of Urban100's LR folder (2-core Intel Xeon, AMX). The threads still
    running are waited for, ``atexit`` handlers run and the streams are flushed as at a normal exit; only objects
    left to the garbage collector are not finalized."""
    try:
        code = main()
        for stop in (signal.SIGINT, signal.SIGTERM):  # the work is done: a signal now has nothing to stop
            signal.signal(stop, signal.SIG_IGN)
    except KeyboardInterrupt:  # landed after the command's own handling, before the line above
        print('interrupted; rerun the same command to continue where it stopped', file=sys.stderr)
        code = 130
    if not _ends_quickly and code != 130:
        sys.exit(code)
    # an interrupted command ends here too: its status is 130 whatever the interpreter's teardown of torch would
    # meet (a run interrupted mid-step once ended killed by SIGINT, after its line). What the interpreter does first
    # at exit: the threading module's exit hooks (an executor's shutdown), then the wait for threads that are not
    # daemons
    try:
        shutdown = getattr(threading, '_shutdown', None)
        if shutdown is not None and threading.current_thread() is threading.main_thread():
            shutdown()
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # closed, or its reader went away: nothing more to say
                pass
    finally:
        os._exit(code if isinstance(code, int) else 1)


if __name__ == '__main__':
    console()
