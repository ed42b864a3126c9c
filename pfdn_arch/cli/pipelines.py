"""``basicsr train`` / ``basicsr test``: check the yml, then hand control to BasicSR's stock pipelines.

BasicSR's ``parse_options`` reads ``sys.argv`` itself, so it gets the argv without the sub-command; the root is
the working directory, so experiments and results go under it (not into site-packages).
"""
import os
import sys

import yaml

from ..errors import UserError


def _opt_path(argv):
    for i, arg in enumerate(argv):
        if arg == '-opt' and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith('-opt='):
            return arg.split('=', 1)[1]
    return None


def check_options(opt_path, is_train, argv=()):
    """Catch the common mistakes before BasicSR turns them into tracebacks. Returns the parsed yml."""
    if opt_path is None:
        raise UserError('missing -opt OPTIONS.yml (e.g. basicsr train -opt options/train_pfdn_x4.yml)')
    if not os.path.isfile(opt_path):
        raise UserError(f'options file not found: {opt_path}')
    try:
        with open(opt_path) as f:
            opt = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise UserError(f'{opt_path} is not valid YAML: {str(err).splitlines()[0]}') from None
    if not isinstance(opt, dict) or 'name' not in opt or 'datasets' not in opt:
        raise UserError(f'{opt_path} is not a BasicSR options file (needs name, datasets, network_g, path)')
    _apply_force_yml(opt, argv)
    import torch

    if opt.get('num_gpu', 0) not in (0, 'auto') and not torch.cuda.is_available():
        raise UserError(f'{opt_path} asks for num_gpu: {opt["num_gpu"]} but CUDA is not available; set num_gpu: 0 '
                        '(or auto) to run on the CPU')
    from ..data.lmdb_store import lmdb_format

    for phase, ds in (opt.get('datasets') or {}).items():
        for key in ('dataroot_gt', 'dataroot_lq'):
            root = ds.get(key)
            if root and not os.path.exists(os.path.expanduser(root)):
                raise UserError(f'datasets.{phase}.{key} not found: {root} (see datasets/README.md for '
                                "'basicsr prepare')")
            fmt = lmdb_format(os.path.expanduser(root)) if root else None
            if ds.get('type') == 'PairedCropDataset' and root and fmt != 'decoded':
                raise UserError(f'datasets.{phase}.{key} ({root}) is not a decoded LMDB, which PairedCropDataset '
                                'reads; make one with basicsr prepare lmdb (or df2k), or use type: PairedImageDataset')
            if root and (ds.get('io_backend') or {}).get('type') == 'lmdb' and fmt != 'png':
                raise UserError(f'datasets.{phase}.{key} ({root}) is not a PNG LMDB made for BasicSR' + (
                    ' (it holds decoded pixels: use type: PairedCropDataset)' if fmt else ' (no meta_info.txt)'))
    auto_resume = '--auto_resume' in argv
    for key, value in (opt.get('path') or {}).items():
        if value and key.startswith('pretrain_network') and not os.path.isfile(os.path.expanduser(value)):
            if auto_resume and key == 'pretrain_network_g' and is_train:
                continue  # an auto-resumed stage loads its own save instead
            raise UserError(f'path.{key} not found: {value} (put the checkpoint there or pass '
                            f'--force_yml path:{key}=PATH)')
    return opt


def _apply_force_yml(opt, argv):
    """Apply ``--force_yml a:b=value ...`` the way BasicSR will, so the checks see the effective options."""
    from basicsr.utils.options import _postprocess_yml_value

    if '--force_yml' not in argv:
        return
    for entry in argv[argv.index('--force_yml') + 1:]:
        if entry.startswith('-'):
            break
        if '=' not in entry:
            raise UserError(f"--force_yml entries look like key:subkey=value, got '{entry}'")
        keys, value = (part.strip() for part in entry.split('=', 1))
        node = opt
        *parents, leaf = keys.split(':')
        for key in parents:
            if not isinstance(node.get(key), dict):
                raise UserError(f"--force_yml {entry}: the options have no '{key}' section")
            node = node[key]
        node[leaf] = _postprocess_yml_value(value)


def cpu_overrides(opt):
    """``--force_yml`` entries that let a GPU yml run where CUDA is absent: the CUDA prefetcher (a CUDA stream)
    becomes BasicSR's plain one, and pinned memory is dropped. Returns [(entry, note)]."""
    import torch

    if torch.cuda.is_available():
        return []
    out = []
    for phase, ds in (opt.get('datasets') or {}).items():
        if ds.get('prefetch_mode') == 'cuda':
            out.append((f'datasets:{phase}:prefetch_mode=~', f'datasets.{phase}.prefetch_mode: cuda'))
        if ds.get('pin_memory'):
            out.append((f'datasets:{phase}:pin_memory=false', f'datasets.{phase}.pin_memory: true'))
    return out


def with_force_yml(argv, entries):
    """argv with ``entries`` added to its ``--force_yml`` list (argparse keeps only the last such flag)."""
    argv = list(argv)
    if not entries:
        return argv
    if '--force_yml' not in argv:
        return argv + ['--force_yml'] + entries
    at = argv.index('--force_yml') + 1
    while at < len(argv) and not argv[at].startswith('-'):
        at += 1
    return argv[:at] + entries + argv[at:]


def _run(argv, prog, is_train):
    opt = check_options(_opt_path(argv), is_train, argv)
    overrides = cpu_overrides(opt)
    for _, what in overrides:
        print(f'note: CUDA is not available; {what} is ignored', file=sys.stderr)
    argv = with_force_yml(argv, [entry for entry, _ in overrides])
    sys.argv = [prog] + list(argv)
    root = os.getcwd()
    if is_train:
        from basicsr.train import train_pipeline

        from ..models import TrainingDiverged
        try:
            train_pipeline(root)
        except TrainingDiverged as err:
            raise UserError(str(err)) from None
    else:
        from basicsr.test import test_pipeline
        test_pipeline(root)


def train_main(argv, prog='basicsr train'):
    _run(argv, prog, is_train=True)


def test_main(argv, prog='basicsr test'):
    _run(argv, prog, is_train=False)
