"""Checks a run passes before BasicSR writes anything, one named function per mistake.

BasicSR's pipelines make (or archive) the experiment folder, start the log and print the options before they build
the datasets, the network and the scheduler, so a mistake found by those is a traceback after hundreds of log lines,
with an existing experiment moved aside. Each function here finds one such mistake from the options alone (and the
files they name) and raises one ``OptionsError`` naming the key: ``RunOptions.check`` calls them all first.
"""
from __future__ import annotations

import difflib
import inspect
import os
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

from basicsr.models import lr_scheduler
from basicsr.utils import registry as r
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

from ..archs import spec_named
from ..archs.pfdn.convert import unwrap_state_dict
from ..errors import CheckpointError, OptionsError, installed
from ..files.checkpoints import check_fit, load_checkpoint, read_checkpoint_file
from ..layout.experiment import Experiment

# what each launcher reads from the environment (BasicSR's init_dist indexes them)
LAUNCHER_ENV = {'pytorch': ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
                'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')}
SCALE_ARGUMENTS = ('upscale', 'scale', 'upscale_factor')  # how BasicSR's archs name their scale
# ``train.scheduler.type``: the schedulers BasicSR's models build (``BaseModel.setup_schedulers``) and the class each
# name builds; the option checks read the names from here
SCHEDULERS = {'MultiStepLR': lr_scheduler.MultiStepRestartLR, 'MultiStepRestartLR': lr_scheduler.MultiStepRestartLR,
              'CosineAnnealingRestartLR': lr_scheduler.CosineAnnealingRestartLR}


def check_launcher(launcher: str) -> None:
    """``--launcher pytorch`` outside torchrun (or slurm outside srun) fails in BasicSR's init_dist with a KeyError."""
    absent = [k for k in LAUNCHER_ENV.get(launcher, ()) if k not in os.environ]
    if absent:
        how = ('start it with torchrun --nproc_per_node=N -m basicsr.train -opt ... --launcher pytorch'
               if launcher == 'pytorch' else 'start it with srun')
        raise OptionsError(f'{launcher} needs the variables its launcher sets ({", ".join(absent)} are not set): '
                           f'{how}, or leave --launcher out for one process', 'launcher')


def arch_class(opt: dict, key: str) -> Optional[type]:
    """The registered class of ``opt[key]['type']`` (checked to exist by RunOptions), or None."""
    net = opt.get(key)
    if not isinstance(net, dict) or net.get('type') not in ARCH_REGISTRY:
        return None
    return ARCH_REGISTRY.get(net['type'])


def check_arguments(fn: Callable, given: dict, where: str, what: str, leave_out: Sequence[str] = (),
                    hint: str = '') -> dict:
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


def network_arguments(cls, net_opt: dict, key: str) -> dict:
    """The arguments ``cls`` is built with from ``net_opt`` (``check_arguments``)."""
    return check_arguments(cls, {k: v for k, v in net_opt.items() if k != 'type'}, key, cls.__name__,
                           hint=f'. Write {key} for {cls.__name__} in a copy of the yml (--force_yml cannot remove '
                                'keys)')


def check_networks(opt: dict) -> Dict[str, Tuple[type, dict]]:
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


def check_scheduler(opt: dict) -> None:
    """The scheduler BasicSR's models build (MultiStepLR/MultiStepRestartLR or CosineAnnealingRestartLR) takes the
    yml's arguments, and its lists agree in length (BasicSR asserts it)."""
    sched = (opt.get('train') or {}).get('scheduler')
    if not isinstance(sched, dict):
        return
    kind = str(sched.get('type'))
    cls = SCHEDULERS.get(kind)
    if cls is None:
        raise OptionsError(f"'{kind}' is not a scheduler BasicSR's models build ({', '.join(SCHEDULERS)})",
                           'train.scheduler.type')
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


def check_optimizers(opt: dict, model_cls: type) -> None:
    """``train.optim_*``: a type the model builds, with arguments its torch optimizer takes."""
    kinds = getattr(model_cls, 'optimizer_types', BASICSR_OPTIMIZERS)
    for key, section in (opt.get('train') or {}).items():
        if not (key.startswith('optim_') and isinstance(section, dict)):
            continue
        kind = str(section.get('type'))
        if kind not in kinds:
            raise OptionsError(f"'{kind}' is not an optimizer {model_cls.__name__} builds ({', '.join(kinds)})",
                               f'train.{key}.type')
        check_arguments(getattr(torch.optim, kind), {k: v for k, v in section.items() if k != 'type'},
                        f'train.{key}', kind, leave_out=('params',))


def check_losses(opt: dict) -> None:
    """``train.*_opt`` losses (BasicSR builds each from its section; the NCC term's taps are PFDNModel's own)."""
    for key, section in (opt.get('train') or {}).items():
        if not (key.endswith('_opt') and key != 'ncc_opt' and isinstance(section, dict)
                and section.get('type') in LOSS_REGISTRY):
            continue
        check_arguments(LOSS_REGISTRY.get(section['type']), {k: v for k, v in section.items() if k != 'type'},
                        f'train.{key}', section['type'])


def check_metrics(opt: dict) -> None:
    """``val.metrics``: each metric function gets the arguments it needs (BasicSR calls it after every validation,
    that is after training)."""
    metrics = (opt.get('val') or {}).get('metrics') or {}
    for name, section in metrics.items() if isinstance(metrics, dict) else ():
        if isinstance(section, dict) and section.get('type') in METRIC_REGISTRY:
            check_arguments(METRIC_REGISTRY.get(section['type']), {k: v for k, v in section.items() if k != 'type'},
                            f'val.metrics.{name}', section['type'], leave_out=('img', 'img2'))


def check_tensorboard(opt: dict, name: str) -> None:
    """``logger.use_tb_logger: true`` imports TensorBoard after the experiment folder was made (BasicSR leaves it out
    in debug runs)."""
    logger = opt.get('logger') or {}
    if logger.get('use_tb_logger') and 'debug' not in name and not installed('tensorboard'):
        raise OptionsError("true needs TensorBoard, which is not installed: pip install tensorboard, or "
                           '--force_yml logger:use_tb_logger=false', 'logger.use_tb_logger')


def check_checkpoint_fits(model_cls: type, net_cls: type, net_args: dict, path: str, param_key: str,
                          strict: bool) -> None:
    """The checkpoint fits the network the yml describes, the way its model will load it (``check_checkpoint`` of the
    model class, where it has one; BasicSR's ``load_network`` otherwise), nothing logged. The network is made on
    PyTorch's meta device: its structure and shapes, no weights (BasicSR builds and loads the real one right
    after)."""
    with torch.device('meta'):
        net = net_cls(**net_args)
    if hasattr(model_cls, 'check_checkpoint'):
        model_cls.check_checkpoint(net, path, param_key, strict)
        return
    # BasicSR's BaseModel.load_network: the param_key entry (or 'params'); unwrap_state_dict drops 'module.'
    check_fit(net, load_checkpoint(path, param_key or 'params'), path, strict=strict)


def check_patch_size(opt: dict) -> None:
    """An HR patch that is not a multiple of the scale has no LR patch (the LR patch is gt_size / scale)."""
    gt_size, scale = opt['datasets']['train'].get('gt_size'), opt['scale']
    if gt_size is None or gt_size % scale == 0:  # a whole number >= 1: checked with the other values (overrides)
        return
    below = gt_size - gt_size % scale
    raise OptionsError(f'{gt_size} is not a multiple of the scale {scale} (the LR patch is gt_size / scale): use '
                       + (f'{below} or ' if below else '') + f'{below + scale}', 'datasets.train.gt_size')


def check_patch_fits_networks(opt: dict) -> None:
    """Each network's own needs of the training patches (its spec's ``check_options``: PFDN's smallest input),
    said before the model fails on them."""
    for key in ('network_g', 'network_t'):
        spec = spec_named((opt.get(key) or {}).get('type'))
        why = spec and spec.check_options(opt['datasets']['train'].get('gt_size'), opt['scale'])
        if why:
            raise OptionsError(why, 'datasets.train.gt_size')


def check_resumable_form(opt: dict, name: str) -> None:
    """Resuming restores the optimizer of the saved network; a network of the other form (``network_g.deploy``
    switched since) has other parameters, and BasicSR would fail in the optimizer."""
    spec = spec_named((opt['network_g'] or {}).get('type'))
    if spec is None:
        return
    exp = Experiment(name)
    saved = next(iter(exp.saved_iters()), None)
    if saved is None or not os.path.isfile(exp.network(saved)):
        return
    try:
        trained_deployed = spec.deployed(unwrap_state_dict(read_checkpoint_file(exp.network(saved))))
    except CheckpointError:
        return  # a damaged save: resuming sets it aside and says so
    deploy = bool(opt['network_g'].get('deploy', False))
    if trained_deployed is not None and trained_deployed != deploy:
        raise OptionsError(f'{exp.folder} was trained with network_g.deploy: {str(trained_deployed).lower()}, and '
                           f'these options say {str(deploy).lower()}: its saved optimizer cannot continue another '
                           'form. Set it back, or start a new run (another name, with path.pretrain_network_g '
                           'pointing at its network)', 'network_g.deploy')


def check_registered(opt: dict, is_train: bool, path: str) -> None:
    """Every ``type`` the yml names is in BasicSR's registry of its kind (BasicSR raises a KeyError otherwise,
    after the experiment folder was made)."""
    wanted = [('model_type', r.MODEL_REGISTRY, opt.get('model_type'))]
    wanted += [(f'{k}.type', r.ARCH_REGISTRY, opt[k].get('type')) for k in ('network_g', 'network_d', 'network_t')
               if isinstance(opt.get(k), dict)]
    wanted += [(f'datasets.{p}.type', r.DATASET_REGISTRY, ds.get('type')) for p, ds in opt['datasets'].items()]
    if is_train:
        wanted += [(f'train.{k}.type', r.LOSS_REGISTRY, v.get('type')) for k, v in opt['train'].items()
                   if k.endswith('_opt') and isinstance(v, dict) and 'type' in v]
    metrics = (opt.get('val') or {}).get('metrics') or {}
    if isinstance(metrics, dict):
        wanted += [(f'val.metrics.{k}.type', r.METRIC_REGISTRY, v.get('type')) for k, v in metrics.items()
                   if isinstance(v, dict)]
    for where, registry, name in wanted:
        if name is None or name in registry or f'{name}_basicsr' in registry:
            continue
        close = difflib.get_close_matches(str(name), [str(k) for k in registry.keys()], 1)
        raise OptionsError(f"{where} '{name}' is not in BasicSR's {registry._name} registry"
                   + (f" (did you mean '{close[0]}'?)" if close else ''))
    model = r.MODEL_REGISTRY.get(opt['model_type'])
    if hasattr(model, 'check_options'):  # a model's own needs (PFDNQATModel), said before anything is written
        model.check_options(opt, is_train)
    for phase, ds in opt['datasets'].items():
        if ds.get('uint8_batches') and not getattr(model, 'converts_uint8_batches', False):
            raise OptionsError(f"datasets.{phase}.uint8_batches needs a model that converts uint8 batches on the "
                               f"device (PFDNModel); {opt['model_type']} expects floats: remove the option", path)


def check_loggers(opt: dict, name: str) -> None:
    """A wandb project without the wandb package, or without TensorBoard (BasicSR syncs wandb from it), fails
    in BasicSR after the experiment folder was made."""
    logger = opt.get('logger') or {}
    wandb = logger.get('wandb') or {}
    if not wandb.get('project') or 'debug' in name:
        return
    if not installed('wandb'):
        raise OptionsError('the wandb package is not installed: pip install wandb, or remove logger.wandb',
                           'logger.wandb.project')
    if logger.get('use_tb_logger') is not True:
        raise OptionsError('needs logger.use_tb_logger: true (BasicSR syncs wandb from TensorBoard)',
                           'logger.wandb')


def check_param_keys(opt: dict, is_train: bool, key: str, path: str) -> None:
    """The entry BasicSR's model will read from a checkpoint is there. PFDNModel reads bare state dicts (like
    the released weights) and BasicSR's {'params', 'params_ema'} alike; BasicSR's own models index the file
    with ``param_key`` (falling back from a missing one to 'params' only), and with EMA on also ask for
    'params_ema'."""
    net = key[len('pretrain_'):]  # network_g, network_t, ...
    key_name = f"param_key_{net.split('_')[-1]}"
    param_key = (opt.get('path') or {}).get(key_name, 'params')
    try:
        obj = read_checkpoint_file(path)
    except CheckpointError as err:
        raise OptionsError(f'{path}: {err.reason}', f'path.{key}') from None
    wrapped = isinstance(obj, dict) and any(k in obj for k in ('params', 'params_ema'))
    if loads_bare_state_dicts(opt):
        if wrapped and param_key is not None and param_key not in obj and 'params' not in obj:
            raise OptionsError(f"{path} has no '{param_key}' entry (it has {', '.join(sorted(obj))})",
                               f'path.{key_name}')
        return
    wanted = [param_key] if param_key is not None else []
    if is_train and net == 'network_g' and (opt.get('train') or {}).get('ema_decay', 0) > 0:
        wanted.append('params_ema')
    for k in wanted:
        if not (wrapped and (k in obj or 'params' in obj)):
            what = "a bare state dict (no 'params' entry)" if not wrapped else f"without a '{k}' entry"
            raise OptionsError(f"{path} is {what}, which {opt.get('model_type')} cannot load with "
                               f'{key_name}: {param_key}' + (' and EMA on' if k == 'params_ema' else '')
                               + '. Use model_type: PFDNModel (it loads either form), or set '
                               f'{key_name}: ~ for a bare state dict', f'path.{key}')


def loads_bare_state_dicts(opt: dict) -> bool:
    """Whether the model class loads bare state dicts (PFDNModel and its subclasses say so with
    ``loads_bare_state_dicts``); BasicSR's models do not."""
    try:
        model = MODEL_REGISTRY.get(opt.get('model_type'))
    except KeyError:
        return False
    return bool(getattr(model, 'loads_bare_state_dicts', False))
