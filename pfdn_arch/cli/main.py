"""``basicsr`` / ``pfdn``: one program with sub-commands, each a module of this package with ``add_parser`` (its
options; light to import) and ``run`` (the work; imports torch and BasicSR when called). Known user errors print one
``error: ...`` line and exit with status 2; Ctrl-C and SIGTERM stop cleanly and say how to continue (status 130).
"""
import argparse
import signal
import sys

from ..errors import UserError
from . import export, infer, prepare, profile, reparam, schedule, test, train

COMMANDS = (train, test, schedule, prepare, infer, export, reparam, profile)


def build_parser():
    from .. import __version__

    p = argparse.ArgumentParser(prog='basicsr', description='PFDN for BasicSR: train, test, prepare data, upscale, '
                                'export and profile. The same program is installed as `pfdn`.',
                                epilog="run 'basicsr <command> -h' for a command's options")
    p.add_argument('--version', action='version', version=f'pfdn {__version__}')
    sub = p.add_subparsers(dest='command', metavar='<command>', title='commands')
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    try:
        args = parser.parse_args(argv)
    except SystemExit as end:  # -h, --version, or argparse's own usage error
        return end.code if isinstance(end.code, int) else 2
    previous = _stop_on_sigterm()
    try:
        import cv2
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # its log lines would double ours
        return args.func(args) or 0
    except UserError as err:
        _end_progress_bars()
        print(f'error: {err}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _end_progress_bars()
        print(f'interrupted; {args.on_interrupt}', file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


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
    (stages, data workers) stopped and a line saying how to continue. Returns the previous handler."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (called from a library): leave signals alone
        return None


if __name__ == '__main__':
    sys.exit(main())
