"""Command line: ``basicsr`` / ``pfdn`` (``main``) and its sub-commands, one module each."""
import argparse


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help; not for required options and empty defaults, where it says nothing."""

    def _get_help_string(self, action):
        if action.required or action.default in (None, False, argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def add_command(sub, name, help_, description=None, on_interrupt='nothing was left half-written'):
    """A sub-command's parser, in the style every command shares: each option's default shown in its help, and
    what a rerun does after Ctrl-C/SIGTERM (``on_interrupt``)."""
    p = sub.add_parser(name, help=help_, description=description or help_,
                       formatter_class=_Help)
    p.set_defaults(on_interrupt=on_interrupt)
    return p
