"""What ``basicsr train`` and ``basicsr test`` share: check the yml, then hand control to BasicSR's stock pipelines.

BasicSR's ``parse_options`` reads ``sys.argv`` itself, so it gets the argv without the sub-command; the root is
the working directory, so experiments and results go under it (not into site-packages).
"""
import os
import sys

import yaml

from ..errors import UserError


def check_options(opt_path, is_train, argv=(), pretrained=True):
    """Catch the common mistakes before BasicSR turns them into tracebacks. Returns the parsed yml.
    ``pretrained=False`` leaves out the checkpoint paths (a schedule's later stages read what earlier ones make)."""
    if opt_path is None:
        raise UserError('missing -opt OPTIONS.yml (e.g. basicsr train -opt options/train_pfdn_x4.yml)')
    if not os.path.isfile(opt_path):
        raise UserError(f'options file not found: {opt_path}')
    try:
        with open(opt_path) as f:
            opt = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise UserError(f'{opt_path} is not valid YAML: {str(err).splitlines()[0]}') from None
    if not isinstance(opt, dict):
        raise UserError(f'{opt_path} is not a BasicSR options file (needs name, model_type, scale, datasets, '
                        'network_g, path)')
    _apply_force_yml(opt, argv)
    _check_structure(opt, opt_path, is_train)
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
        _check_pairs(phase, ds, opt['scale'])
    _check_registered(opt, opt_path, is_train)
    _check_loggers(opt)
    auto_resume = '--auto_resume' in argv
    for key, value in (opt.get('path') or {}).items() if pretrained else ():
        if value and key.startswith('pretrain_network') and not os.path.isfile(os.path.expanduser(value)):
            if auto_resume and key == 'pretrain_network_g' and is_train:
                continue  # an auto-resumed stage loads its own save instead
            raise UserError(f'path.{key} not found: {value} (put the checkpoint there or pass '
                            f'--force_yml path:{key}=PATH)')
        if value and key.startswith('pretrain_network') and os.path.isfile(os.path.expanduser(value)):
            _check_param_keys(opt, key, os.path.expanduser(value), is_train)
    return opt


def _check_registered(opt, opt_path, is_train):
    """Every ``type`` the yml names is in BasicSR's registry of its kind (BasicSR raises a KeyError otherwise, after
    the experiment folder was made)."""
    import difflib

    from basicsr.utils import registry as r

    wanted = [('model_type', r.MODEL_REGISTRY, opt.get('model_type'))]
    wanted += [(f'{k}.type', r.ARCH_REGISTRY, opt[k].get('type')) for k in ('network_g', 'network_d', 'network_t')
               if isinstance(opt.get(k), dict)]
    wanted += [(f'datasets.{p}.type', r.DATASET_REGISTRY, ds.get('type')) for p, ds in opt['datasets'].items()]
    if is_train:
        wanted += [(f'train.{k}.type', r.LOSS_REGISTRY, v.get('type')) for k, v in opt['train'].items()
                   if k.endswith('_opt') and isinstance(v, dict) and 'type' in v and k not in ('optim_g', 'optim_d')]
    metrics = (opt.get('val') or {}).get('metrics') or {}
    if isinstance(metrics, dict):
        wanted += [(f'val.metrics.{k}.type', r.METRIC_REGISTRY, v.get('type')) for k, v in metrics.items()
                   if isinstance(v, dict)]
    for where, registry, name in wanted:
        if name is None or name in registry or f'{name}_basicsr' in registry:
            continue
        close = difflib.get_close_matches(str(name), [str(k) for k in registry.keys()], 1)
        raise UserError(f"{opt_path}: {where} '{name}' is not in BasicSR's {registry._name} registry"
                        + (f" (did you mean '{close[0]}'?)" if close else ''))
    model = r.MODEL_REGISTRY.get(opt['model_type'])
    for phase, ds in opt['datasets'].items():
        if ds.get('uint8_batches') and not getattr(model, 'converts_uint8_batches', False):
            raise UserError(f"{opt_path}: datasets.{phase}.uint8_batches needs a model that converts uint8 batches "
                            f"on the device (PFDNModel); {opt['model_type']} expects floats: remove the option")


def _check_loggers(opt):
    """A wandb project without the wandb package, or without TensorBoard (BasicSR syncs wandb from it), fails in
    BasicSR after the experiment folder was made."""
    import importlib.util

    logger = opt.get('logger') or {}
    wandb = logger.get('wandb') or {}
    if not wandb.get('project') or 'debug' in str(opt.get('name')):
        return
    if importlib.util.find_spec('wandb') is None:
        raise UserError('logger.wandb.project is set but the wandb package is not installed: pip install wandb, '
                        'or remove logger.wandb')
    if logger.get('use_tb_logger') is not True:
        raise UserError('logger.wandb needs logger.use_tb_logger: true (BasicSR syncs wandb from TensorBoard)')


def _check_param_keys(opt, key, path, is_train):
    """The entry BasicSR's model will read from a checkpoint is there. PFDNModel reads bare state dicts (like the
    released weights) and BasicSR's {'params', 'params_ema'} alike; BasicSR's own models index the file with
    ``param_key`` (falling back from a missing one to 'params' only), and with EMA on also ask for 'params_ema'."""
    from ..checkpoint import read_checkpoint_file

    net = key[len('pretrain_'):]  # network_g, network_t, ...
    param_key = (opt.get('path') or {}).get(f'param_key_{net.split("_")[-1]}', 'params')
    obj = read_checkpoint_file(path)
    wrapped = isinstance(obj, dict) and any(k in obj for k in ('params', 'params_ema'))
    if opt.get('model_type') == 'PFDNModel':
        if wrapped and param_key is not None and param_key not in obj and 'params' not in obj:
            raise UserError(f"path.param_key_{net.split('_')[-1]}: {path} has no '{param_key}' entry (it has "
                            f"{', '.join(sorted(obj))})")
        return
    wanted = [param_key] if param_key is not None else []
    if is_train and net == 'network_g' and (opt.get('train') or {}).get('ema_decay', 0) > 0:
        wanted.append('params_ema')
    for k in wanted:
        if not (wrapped and (k in obj or 'params' in obj)):
            what = "a bare state dict (no 'params' entry)" if not wrapped else f"without a '{k}' entry"
            raise UserError(f"path.{key}: {path} is {what}, which {opt.get('model_type')} cannot load with "
                            f"param_key_{net.split('_')[-1]}: {param_key}" + (' and EMA on' if k == 'params_ema' else '')
                            + ". Use model_type: PFDNModel (it loads either form), or set param_key: ~ for a bare "
                            "state dict")


def _check_structure(opt, opt_path, is_train):
    """The sections BasicSR reads without checking, present and of the right kind."""
    needed = ['name', 'model_type', 'scale', 'datasets', 'network_g', 'path'] + (['train'] if is_train else [])
    missing = [k for k in needed if opt.get(k) is None]
    if missing:
        raise UserError(f"{opt_path} has no {', '.join(missing)}: a BasicSR {'training' if is_train else 'test'} "
                        f"options file needs {', '.join(needed)} (see options/)")
    for key in ('datasets', 'network_g', 'path') + (('train',) if is_train else ()):
        if not isinstance(opt[key], dict):
            raise UserError(f'{opt_path}: {key} must be a mapping of names to settings, not a '
                            f'{type(opt[key]).__name__}')
    for phase, ds in opt['datasets'].items():
        if not isinstance(ds, dict) or 'type' not in ds:
            raise UserError(f'{opt_path}: datasets.{phase} must be a mapping with a type (e.g. PairedImageDataset)')
        if phase != 'train' and not phase.startswith(('val', 'test')):
            raise UserError(f"{opt_path}: datasets.{phase}: BasicSR knows the phases train, val* and test* only")
    if 'type' not in opt['network_g']:
        raise UserError(f'{opt_path}: network_g has no type (e.g. type: PFDN)')
    if is_train and 'train' not in opt['datasets']:
        raise UserError(f'{opt_path}: datasets has no train entry to train on')
    # keys BasicSR's pipelines index without a default: missing, they fail after the work is done
    required = {'val': ('save_img',) + (('val_freq',) if is_train else ())}
    if is_train:
        required['logger'] = ('print_freq', 'save_checkpoint_freq')
        required['train'] = ('total_iter',)
    for section, keys in required.items():
        if section == 'val' and opt.get('val') is None:
            continue  # no validation at all is fine
        if not isinstance(opt.get(section), dict):
            raise UserError(f'{opt_path}: {section} must be a mapping with {", ".join(keys)}')
        missing = [k for k in keys if opt[section].get(k) is None]
        if missing:
            raise UserError(f'{opt_path}: {section} has no {", ".join(missing)}, which BasicSR needs')
    if not is_train and not opt['path'].get('pretrain_network_g'):
        raise UserError(f'{opt_path}: path.pretrain_network_g is not set: testing needs the weights to test')


def _check_pairs(phase, ds, scale):
    """Folder-based PairedImageDataset: every GT has its LR and their sizes agree with the scale (BasicSR asserts
    it mid-run: in training, after a checkpoint was written)."""
    if ds.get('type') != 'PairedImageDataset' or (ds.get('io_backend') or {}).get('type') != 'disk':
        return
    from ..images import image_size, list_images

    gt_dir, lq_dir = (os.path.expanduser(ds[k]) for k in ('dataroot_gt', 'dataroot_lq'))
    template = ds.get('filename_tmpl', '{}')
    for gt in list_images(gt_dir):
        stem, ext = os.path.splitext(os.path.basename(gt))
        lq = os.path.join(lq_dir, template.format(stem) + ext)
        if not os.path.isfile(lq):
            raise UserError(f'datasets.{phase}: {gt} has no LR image {lq}')
        try:
            (gh, gw), (lh, lw) = image_size(gt), image_size(lq)
        except UserError:
            continue  # the dataset's own reading reports what it cannot decode
        exact = phase == 'train'  # training crops need GT = LR x scale; evaluation crops GT to LR x scale
        if (lw * scale, lh * scale) != (gw, gh) if exact else (lw * scale > gw or lh * scale > gh):
            raise UserError(f'datasets.{phase}: {os.path.basename(lq)} is {lw}x{lh}, x{scale} = {lw * scale}x'
                            f'{lh * scale}, but its GT is {gw}x{gh}; the LR images must be the GT downscaled x{scale} '
                            '(basicsr prepare benchmark / lr make such pairs)')


def _apply_force_yml(opt, argv):
    """Apply ``--force_yml a:b=value ...`` the way BasicSR will, so the checks see the effective options."""
    # BasicSR's own value parser, so a value means here exactly what it will mean to BasicSR; its public
    # parse_options cannot be used for a check: it reads sys.argv, starts distributed init and seeds the RNGs
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
        if leaf not in node:  # a typo would otherwise be added as a new key and silently ignored
            import difflib
            close = difflib.get_close_matches(leaf, [str(k) for k in node], 1)
            where = ':'.join(parents) or 'the top level'
            raise UserError(f"--force_yml {entry}: the options have no '{leaf}' in {where}"
                            + (f" (did you mean '{close[0]}'?)" if close else '; add it to the yml instead'))
        value = _postprocess_yml_value(value)
        if parents == ['datasets'] and value is None:
            raise UserError(f'--force_yml {entry}: a dataset cannot be removed with --force_yml (BasicSR would '
                            f'crash on it); copy the yml and delete datasets.{leaf} there')
        node[leaf] = value


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


def run_pipeline(argv, prog, is_train):
    """``argv`` are BasicSR's own flags (``-opt X ...``); an options file not in the working directory is looked up
    among the shipped ones (options/), so the README's commands work from any folder."""
    from ..shipped import option_file

    at = argv.index('-opt') + 1
    argv = argv[:at] + [option_file(argv[at])] + argv[at + 1:]
    opt = check_options(argv[at], is_train, argv)
    overrides = cpu_overrides(opt)
    for _, what in overrides:
        print(f'note: CUDA is not available; {what} is ignored', file=sys.stderr)
    argv = with_force_yml(argv, [entry for entry, _ in overrides])
    saved, sys.argv = sys.argv, [prog] + list(argv)
    try:
        recorders = _pipeline(is_train)
    finally:
        sys.argv = saved
    name = ('debug_' if '--debug' in argv and is_train else '') + opt['name']
    if is_train:
        print(f'results: experiments/{name}/ (models/, training_states/, the log)', file=sys.stderr)
    elif any(r.written for r in recorders):
        print(f'results: results/{name}/ (results.md: the metrics table; the log)', file=sys.stderr)
    else:
        print(f'results: results/{name}/ (the log; the model reported no metrics to tabulate)', file=sys.stderr)


def _pipeline(is_train):
    """BasicSR's own pipeline, rooted at the working directory, with every model's validations recorded."""
    from ..results import recording

    root = os.getcwd()
    with recording(is_train) as recorders:
        if is_train:
            from basicsr.train import train_pipeline

            from ..models.pfdn_model import TrainingDiverged
            try:
                train_pipeline(root)
            except TrainingDiverged as err:
                raise UserError(str(err)) from None
        else:
            from basicsr.test import test_pipeline
            test_pipeline(root)
    return recorders
