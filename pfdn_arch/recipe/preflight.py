"""Checks a run passes before BasicSR writes anything, one named function per mistake.

BasicSR's pipelines make (or archive) the experiment folder, start the log and print the options before they build
the datasets, the network and the scheduler, so a mistake found by those is a traceback after hundreds of log lines,
with an existing experiment moved aside. Each function here finds one such mistake from the options alone (and the
files they name) and raises one ``OptionsError`` naming the key: ``RunOptions.check`` calls them all first.
"""
import importlib.util
import inspect
import os

from ..errors import OptionsError

# The keys BasicSR's stock datasets (and ours) index without a default, by phase ('any' or 'train'), and the loader's.
DATASET_KEYS = {
    'PairedImageDataset': {'any': ('dataroot_gt', 'dataroot_lq', 'io_backend'), 'train': ('gt_size', 'use_hflip',
                                                                                          'use_rot')},
    'PairedCropDataset': {'any': ('dataroot_gt', 'dataroot_lq'), 'train': ('gt_size',)},
    'SingleImageDataset': {'any': ('dataroot_lq', 'io_backend')},
}
LOADER_KEYS = ('batch_size_per_gpu', 'num_worker_per_gpu')
IO_BACKENDS = {'PairedImageDataset': "io_backend: {type: disk} for folders, {type: lmdb} for BasicSR's PNG LMDBs",
               'SingleImageDataset': 'io_backend: {type: disk}'}
# what each launcher reads from the environment (BasicSR's init_dist indexes them)
LAUNCHER_ENV = {'pytorch': ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
                'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')}
SCALE_ARGUMENTS = ('upscale', 'scale', 'upscale_factor')  # how BasicSR's archs name their scale


def check_launcher(launcher):
    """``--launcher pytorch`` outside torchrun (or slurm outside srun) fails in BasicSR's init_dist with a KeyError."""
    absent = [k for k in LAUNCHER_ENV.get(launcher, ()) if k not in os.environ]
    if absent:
        how = ('start it with torchrun --nproc_per_node=N -m basicsr.train -opt ... --launcher pytorch'
               if launcher == 'pytorch' else 'start it with srun')
        raise OptionsError(f'{launcher} needs the variables its launcher sets ({", ".join(absent)} are not set): '
                           f'{how}, or leave --launcher out for one process', 'launcher')


def arch_class(opt, key):
    """The registered class of ``opt[key]['type']`` (checked to exist by RunOptions), or None."""
    from basicsr.utils.registry import ARCH_REGISTRY

    net = opt.get(key)
    if not isinstance(net, dict) or net.get('type') not in ARCH_REGISTRY:
        return None
    return ARCH_REGISTRY.get(net['type'])


def check_arguments(fn, given, where, what, leave_out=(), hint=''):
    """The keyword arguments ``fn`` (a class or function BasicSR builds from a yml section) is called with: its
    defaults, then ``given``, after checking that ``given`` names only arguments it takes (unless it takes
    ``**kwargs``) and every one it needs without a default; ``leave_out``: what the caller passes itself. One line
    naming the key otherwise."""
    params = {n: p for n, p in inspect.signature(fn).parameters.items() if n not in leave_out}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    names = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unexpected = [k for k in given if k not in names]
    if unexpected and not takes_any:
        raise OptionsError(f"{what} takes no argument {unexpected[0]}"
                           + (f' (nor {", ".join(unexpected[1:])})' if unexpected[1:] else '')
                           + f"; it takes {', '.join(names) or 'none'}{hint}", f'{where}.{unexpected[0]}')
    needed = [n for n in names if params[n].default is inspect.Parameter.empty and n not in given]
    if needed:
        raise OptionsError(f"{what} needs {', '.join(needed)}, which the yml does not give", where)
    return dict({n: params[n].default for n in names if params[n].default is not inspect.Parameter.empty}, **given)


def network_arguments(cls, net_opt, key):
    """The arguments ``cls`` is built with from ``net_opt`` (``check_arguments``)."""
    return check_arguments(cls, {k: v for k, v in net_opt.items() if k != 'type'}, key, cls.__name__,
                           hint=f'. Write {key} for {cls.__name__} in a copy of the yml (--force_yml cannot remove '
                                'keys)')


def check_networks(opt):
    """Every network section builds: its arguments are its class's, and its scale is the options' ``scale``.
    Returns {key: (class, arguments)}."""
    built = {}
    for key in ('network_g', 'network_t', 'network_d'):
        cls = arch_class(opt, key)
        if cls is None:
            continue
        args = network_arguments(cls, opt[key], key)
        built[key] = (cls, args)
        if key == 'network_d':
            continue
        scale_arg = next((a for a in SCALE_ARGUMENTS if a in args), None)
        if scale_arg is not None and args[scale_arg] != opt['scale']:
            said = 'sets' if scale_arg in opt[key] else 'defaults to'
            raise OptionsError(f"is {opt['scale']} but {key}.{scale_arg} {said} {args[scale_arg]}: they must agree "
                               f"(e.g. --force_yml scale={opt['scale']} {key}:{scale_arg}={opt['scale']}, or the "
                               f"shipped x{opt['scale']} options)", 'scale')
    return built


def check_scheduler(opt):
    """The scheduler BasicSR's models build (MultiStepLR/MultiStepRestartLR or CosineAnnealingRestartLR) takes the
    yml's arguments, and its lists agree in length (BasicSR asserts it)."""
    from basicsr.models import lr_scheduler

    sched = (opt.get('train') or {}).get('scheduler')
    if not isinstance(sched, dict):
        return
    kind = sched.get('type')
    cls = {'MultiStepLR': lr_scheduler.MultiStepRestartLR, 'MultiStepRestartLR': lr_scheduler.MultiStepRestartLR,
           'CosineAnnealingRestartLR': lr_scheduler.CosineAnnealingRestartLR}.get(kind)
    if cls is None:
        raise OptionsError(f"'{kind}' is not a scheduler BasicSR's models build (MultiStepLR, MultiStepRestartLR, "
                           'CosineAnnealingRestartLR)', 'train.scheduler.type')
    params = [n for n in inspect.signature(cls).parameters if n not in ('optimizer', 'last_epoch')]
    needed = [n for n, p in inspect.signature(cls).parameters.items()
              if n in params and p.default is inspect.Parameter.empty]
    given = [k for k in sched if k != 'type']
    unexpected = [k for k in given if k not in params]
    if unexpected:
        raise OptionsError(f"{kind} takes {', '.join(params)}, not {', '.join(unexpected)}: write the scheduler for "
                           f"{kind} in a copy of the yml (--force_yml cannot remove keys)", 'train.scheduler')
    absent = [n for n in needed if n not in sched]
    if absent:
        raise OptionsError(f"{kind} needs {', '.join(absent)}", 'train.scheduler')
    for first, second, default in (('restarts', 'restart_weights', 1), ('periods', 'restart_weights', 1)):
        if first in params and second in params and (first in sched or second in sched):
            a = list(sched.get(first, [0] if first == 'restarts' else []))
            b = list(sched.get(second, [default]))
            if len(a) != len(b):
                raise OptionsError(f'{first} has {len(a)} entries and {second} {len(b)}: give one weight per entry',
                                   'train.scheduler')


# the optimizers BasicSR's models build (BaseModel.get_optimizer: Adam only); a model may say it builds more
BASICSR_OPTIMIZERS = ('Adam',)


def check_optimizers(opt, model_cls):
    """``train.optim_*``: a type the model builds, with arguments its torch optimizer takes."""
    import torch

    kinds = getattr(model_cls, 'optimizers', BASICSR_OPTIMIZERS)
    for key, section in (opt.get('train') or {}).items():
        if not (key.startswith('optim_') and isinstance(section, dict)):
            continue
        kind = section.get('type')
        if kind not in kinds:
            raise OptionsError(f"'{kind}' is not an optimizer {model_cls.__name__} builds ({', '.join(kinds)})",
                               f'train.{key}.type')
        check_arguments(getattr(torch.optim, kind), {k: v for k, v in section.items() if k != 'type'},
                        f'train.{key}', kind, leave_out=('params',))


def check_losses(opt):
    """``train.*_opt`` losses (BasicSR builds each from its section; the NCC term's taps are PFDNModel's own)."""
    from basicsr.utils.registry import LOSS_REGISTRY

    for key, section in (opt.get('train') or {}).items():
        if not (key.endswith('_opt') and key != 'ncc_opt' and isinstance(section, dict)
                and section.get('type') in LOSS_REGISTRY):
            continue
        check_arguments(LOSS_REGISTRY.get(section['type']), {k: v for k, v in section.items() if k != 'type'},
                        f'train.{key}', section['type'])


def check_metrics(opt):
    """``val.metrics``: each metric function gets the arguments it needs (BasicSR calls it after every validation,
    that is after training)."""
    from basicsr.utils.registry import METRIC_REGISTRY

    metrics = (opt.get('val') or {}).get('metrics') or {}
    for name, section in metrics.items() if isinstance(metrics, dict) else ():
        if isinstance(section, dict) and section.get('type') in METRIC_REGISTRY:
            check_arguments(METRIC_REGISTRY.get(section['type']), {k: v for k, v in section.items() if k != 'type'},
                            f'val.metrics.{name}', section['type'], leave_out=('img', 'img2'))


def check_dataset_keys(phase, ds):
    """The keys the dataset's class and BasicSR's loader index without a default."""
    wanted = DATASET_KEYS.get(ds.get('type'), {})
    keys = list(wanted.get('any', ()))
    if phase == 'train':
        keys += list(wanted.get('train', ())) + list(LOADER_KEYS)
    absent = [k for k in keys if ds.get(k) is None]
    if absent:
        hint = f' ({IO_BACKENDS[ds["type"]]})' if 'io_backend' in absent and ds.get('type') in IO_BACKENDS else ''
        raise OptionsError(f"{ds.get('type')} needs {', '.join(absent)}{hint}; add them to the yml",
                           f'datasets.{phase}')
    backend = ds.get('io_backend')
    if 'io_backend' in keys and not (isinstance(backend, dict) and backend.get('type') in ('disk', 'lmdb')):
        raise OptionsError(f'must be a mapping with type: disk or lmdb, not {backend!r}',
                           f'datasets.{phase}.io_backend')


def check_tensorboard(opt, name):
    """``logger.use_tb_logger: true`` imports TensorBoard after the experiment folder was made (BasicSR leaves it out
    in debug runs)."""
    logger = opt.get('logger') or {}
    if logger.get('use_tb_logger') and 'debug' not in name and importlib.util.find_spec('tensorboard') is None:
        raise OptionsError("true needs TensorBoard, which is not installed: pip install tensorboard, or "
                           '--force_yml logger:use_tb_logger=false', 'logger.use_tb_logger')


def check_crops(phase, ds, scale):
    """Training crops fit the images: PairedCropDataset leaves out the images smaller than its crop (with a note) and
    needs a batch of the rest; BasicSR's PairedImageDataset fails mid-run on any. Returns a note or None."""
    from ..data.lmdb_store import lq_sizes
    from ..data.paired_crop_dataset import too_small

    gt_size = ds.get('gt_size')
    if phase != 'train' or not isinstance(gt_size, int):
        return None
    sizes = lq_sizes(ds)
    small = [hw for hw in sizes if too_small(hw, gt_size, scale)]
    if not small:
        return None
    lq = gt_size // scale
    if ds.get('type') != 'PairedCropDataset':
        raise OptionsError(f'{len(small)} of its {len(sizes)} LQ images are smaller than the LQ crop {lq} (gt_size '
                           f'{gt_size} / scale {scale}), e.g. {small[0][1]}x{small[0][0]}, which {ds.get("type")} '
                           'cannot crop: lower gt_size or leave those images out', f'datasets.{phase}.gt_size')
    left = len(sizes) - len(small)
    if left * ds.get('dataset_enlarge_ratio', 1) < ds.get('batch_size_per_gpu', 1):
        raise OptionsError(f'{len(small)} of its {len(sizes)} LQ images are smaller than the LQ crop {lq} (gt_size '
                           f'{gt_size} / scale {scale}), and the {left} left do not fill a batch: lower gt_size',
                           f'datasets.{phase}.gt_size')
    return (f'datasets.{phase}: {len(small)} of {len(sizes)} images are smaller than the crop (LQ {lq} px, gt_size '
            f'{gt_size}) and are left out of training; lower gt_size to use them')


def check_checkpoint_fits(model_cls, net_cls, net_args, path, param_key, strict):
    """The checkpoint loads into the network the yml describes, the way its model will load it (``check_checkpoint``
    of the model class, where it has one; BasicSR's ``load_network`` otherwise): built on the CPU, nothing logged."""
    import torch

    from ..files.checkpoints import load_checkpoint, load_into

    with torch.device('cpu'):
        net = net_cls(**net_args)
    if hasattr(model_cls, 'check_checkpoint'):
        model_cls.check_checkpoint(net, path, param_key, strict)
        return
    # BasicSR's BaseModel.load_network: the param_key entry (or 'params'); unwrap_state_dict drops 'module.'
    load_into(net, load_checkpoint(path, param_key or 'params'), path, strict=strict)
