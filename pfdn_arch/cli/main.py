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
import sys

from ..errors import UserError

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
    try:
        import importlib

        import pfdn_arch  # noqa: F401  (compatibility layer + registries, before BasicSR runs)

        func = getattr(importlib.import_module(module_name), func_name)
        return func(rest, prog=f'basicsr {name}') or 0
    except UserError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('interrupted; rerun the same command to continue where it stopped', file=sys.stderr)
        return 130


def parser(prog, description):
    return argparse.ArgumentParser(prog=prog, description=description)


if __name__ == '__main__':
    sys.exit(main())
