"""Command line: ``basicsr`` / ``pfdn`` (``main``) and its sub-commands, one module each."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Dict, NoReturn, Optional, Union

from ..errors import OptionsError, OutputExists


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one ``error:`` line (and status 2), as every other error here."""

    def error(self, message: str) -> NoReturn:
        print(f'error: {message} (see {self.prog} -h)', file=sys.stderr)
        raise SystemExit(2)


def whole(least: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``least``."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'must be a whole number, got {text!r}') from None
        if value < least:
            raise argparse.ArgumentTypeError(f'must be at least {least}, got {value}')
        return value
    parse.__name__ = f'whole number >= {least}'
    return parse


def in_range(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in low..high."""
    def parse(text):
        value = whole(low)(text)
        if value > high:
            raise argparse.ArgumentTypeError(f'must be in {low}..{high}, got {value}')
        return value
    parse.__name__ = f'whole number in {low}..{high}'
    return parse


def file_stem(text: str) -> str:
    """An argparse type: a file name without folders."""
    if not text or text in ('.', '..') or '/' in text or '\\' in text or '\x00' in text:
        raise argparse.ArgumentTypeError(f'must be a plain file name (no folders), got {text!r}')
    return text


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help; not for required options and empty defaults, where it says nothing."""

    def _get_help_string(self, action):
        if action.required or action.default in (None, False, argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def add_command(sub: 'argparse._SubParsersAction', name: str, help_: str, description: Optional[str] = None,
                on_interrupt: Union[str, Callable[[argparse.Namespace], str]] = 'nothing was left half-written'
                ) -> argparse.ArgumentParser:
    """A sub-command's parser, in the style every command shares: each option's default shown in its help, and
    what a rerun does after Ctrl-C/SIGTERM (``on_interrupt``: the line, or what makes it from the command's
    arguments once it stopped, where the truth depends on what it did)."""
    p = sub.add_parser(name, help=help_, description=description or help_, formatter_class=_Help)
    p.set_defaults(on_interrupt=on_interrupt)
    return p


OVERRIDE_HELP = 'override options without editing the file, e.g. train:total_iter=1000 (keys must exist)'


def add_override_flag(p: argparse.ArgumentParser, help_: str = OVERRIDE_HELP) -> None:
    """BasicSR's ``--force_yml``, declared once for every command that takes it."""
    p.add_argument('--force_yml', nargs='+', metavar='KEY:SUB=VALUE', default=None, help=help_)


def add_basicsr_flags(p: argparse.ArgumentParser) -> None:
    """BasicSR's own command-line flags (its ``parse_options``), documented here and passed through."""
    p.add_argument('-opt', required=True, metavar='OPTIONS.yml', help='the options file (e.g. options/'
                   'train_pfdn_x4.yml)')
    p.add_argument('--launcher', choices=('none', 'pytorch', 'slurm'), default='none',
                   help="distributed launcher ('pytorch' under torchrun)")
    p.add_argument('--auto_resume', action='store_true',
                   help='resume from the newest loadable training state of experiments/<name>/')
    p.add_argument('--debug', action='store_true', help="BasicSR's debug mode (a debug_ name, frequent logs)")
    p.add_argument('--local_rank', '--local-rank', type=int, default=0, help='set by the launcher')
    add_override_flag(p)


def error_line(err: Exception, flags: Dict[str, str]) -> str:
    """The one line a PFDNError becomes: an option named by its flag, and what to pass where a flag would help."""
    if isinstance(err, OptionsError) and err.path in flags:
        text = f'{flags[err.path]}: {err.reason}'
    else:
        text = str(err)
    if isinstance(err, OutputExists) and 'force' in flags:
        text += '; pass --force to replace it, or choose another output'
    return f'error: {text}'
