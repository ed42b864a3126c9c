"""``basicsr`` / ``pfdn``: one program with sub-commands, each a module of this package with ``add_parser`` (its
options; light to import) and ``run`` (the work; imports torch and BasicSR when called). The library raises typed
errors (``pfdn_arch.errors``); only here do they become one ``error: ...`` line (with the flag that would help) and
exit status 2. Ctrl-C and SIGTERM stop cleanly and say how to continue (status 130). The console commands start in
``pfdn_arch.console``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Optional

from .. import stopping
from ..errors import PFDNError
from . import Parser, error_line, export, infer, prepare, profile, reparam, schedule, test, train

COMMANDS = (train, test, schedule, prepare, infer, export, reparam, profile)
# what the training side needs beyond the deployment side's requirements (setup.py's `train` extra)
TRAINING_MODULES = {'basicsr': 'train', 'lmdb': 'train', 'skimage': 'train', 'torchvision': 'train'}


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
    """Run one command (``argv``: the command line without the program's name); its exit status. Ctrl-C and SIGTERM
    are the commands' own from here on (``stopping``), and given back when it returns."""
    argv = list(sys.argv[1:] if argv is None else argv)
    previous = stopping.handle_signals()  # first: a Ctrl-C from here on ends with the command's line
    stderr = sys.stderr
    sys.stderr = LineEnds(stderr)
    try:
        return _main(argv, previous)
    finally:
        sys.stderr = stderr


class LineEnds:
    """A stream (stderr) that remembers whether its last write ended a line: a Ctrl-C that lands between the text
    print() writes and its newline (two writes) would otherwise glue the last line onto the one after it."""

    def __init__(self, stream: Any):
        self.stream, self.mid_line = stream, False

    def write(self, text: str) -> int:
        # said open before the write and closed after it: a Ctrl-C at any instant leaves at worst a blank line
        if text and not text.endswith('\n'):
            self.mid_line = True
        written = self.stream.write(text)
        if text.endswith('\n'):
            self.mid_line = False
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _main(argv: List[str], previous: Any) -> int:
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
        _end_progress_bars()
        print('interrupted before it started; nothing was done', file=sys.stderr)
        stopping.restore(previous)
        return 130
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
    except OSError as err:  # the system refused a read or a write no check foresaw: one line, what and why
        from ..files.paths import refused

        _end_progress_bars()
        print(error_line(refused(err), command_flags(parser, args)), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _end_progress_bars()
        said = args.on_interrupt(args) if callable(args.on_interrupt) else args.on_interrupt
        print(f'interrupted; {said}', file=sys.stderr)
        return 130
    finally:
        stopping.restore(previous)


def _end_progress_bars():
    """Close progress bars an error interrupted, and end a line left open, so the error line starts a line of its
    own."""
    try:
        from tqdm import tqdm
        for bar in list(getattr(tqdm, '_instances', ())):
            bar.close()
    except Exception:
        pass
    if getattr(sys.stderr, 'mid_line', False):
        sys.stderr.write('\n')
