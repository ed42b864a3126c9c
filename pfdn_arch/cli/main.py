"""``basicsr`` / ``pfdn``: one program, sub-commands. Known user errors print one 'error: ...' line and exit 2.

    basicsr train    -opt X [--launcher ...] [--auto_resume] [--debug] [--force_yml k=v ...]
    basicsr test     -opt X [BasicSR's flags]
    basicsr schedule [--profile full|smoke] [--stages S1.yml S2.yml ...]
    basicsr reparam  --in CKPT --out CKPT [--force]
    basicsr prepare  lr|subimages|lmdb|df2k|benchmark|samples ...
    basicsr infer    -i PATH -o DIR [--weights W] [--tile N] [--dtype fp32|fp16|bf16] [--force]
    basicsr export   [--weights W] [--out DIR] [--formats pth safetensors onnx]
    basicsr profile  [--weights W] [--size H W] [--device cpu|cuda]
"""
import argparse
import signal
import sys

from ..errors import UserError

# what a rerun does after Ctrl-C / SIGTERM
CONTINUE = {'train': 'rerun it with --auto_resume to continue from the last saved training state',
            'schedule': 'rerun the same command to continue: finished stages are skipped, the stopped one resumes',
            'infer': 'rerun the same command to continue: finished images are kept',
            'prepare': 'rerun the same command to continue where it stopped'}

COMMANDS = {
    'train': ('pfdn_arch.cli.pipelines', 'train_main', 'train with BasicSR\'s train_pipeline (its flags pass through)'),
    'test': ('pfdn_arch.cli.pipelines', 'test_main', 'test with BasicSR\'s test_pipeline (its flags pass through)'),
    'schedule': ('pfdn_arch.cli.schedule', 'main', 'run the chain of training stages in order, resuming'),
    'reparam': ('pfdn_arch.cli.reparam', 'main', 'convert a training-form checkpoint to the deployed form'),
    'prepare': ('pfdn_arch.cli.prepare', 'main', 'make LR images, sub-images, LMDBs, benchmark folders'),
    'infer': ('pfdn_arch.cli.infer', 'main', 'upscale an image or a folder (tiles, fp16/bf16, 16-bit, alpha)'),
    'export': ('pfdn_arch.cli.export', 'main', 'deployed weights as .pth, .safetensors and ONNX'),
    'profile': ('pfdn_arch.cli.profile', 'main', 'parameters, MACs, activations, convs, runtime, peak memory'),
}


def usage():
    lines = ['usage: basicsr <command> [options]   (also available as: pfdn <command>)', '', 'commands:']
    lines += [f'  {name:<9} {help_}' for name, (_, _, help_) in COMMANDS.items()]
    lines += ['', "run 'basicsr <command> -h' for a command's options"]
    return '\n'.join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(usage())
        return 0 if argv else 2
    if argv[0] == '--version':
        from .. import __version__
        print(f'pfdn {__version__}')
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command '{name}'; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module_name, func_name, _ = COMMANDS[name]
    previous = _stop_on_sigterm()
    try:
        import importlib

        import pfdn_arch  # noqa: F401  (compatibility layer + registries, before BasicSR runs)
        import cv2
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # OpenCV's own log lines would double the one error line a bad image gets

        func = getattr(importlib.import_module(module_name), func_name)
        return func(rest, prog=f'basicsr {name}') or 0
    except UserError as err:
        _end_progress_bars()
        print(f'error: {err}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _end_progress_bars()
        print(f"interrupted; {CONTINUE.get(name, 'nothing was left half-written')}", file=sys.stderr)
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


def parser(prog, description):
    return argparse.ArgumentParser(prog=prog, description=description)


if __name__ == '__main__':
    sys.exit(main())
