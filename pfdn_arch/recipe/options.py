"""One run's options, parsed once: the yml, BasicSR's flags (``--launcher``, ``--auto_resume``, ``--debug``,
``--force_yml``), and the checks that catch what BasicSR would otherwise throw mid-run. ``basicsr train``, ``basicsr
test``, ``python -m basicsr.train|test`` and every stage of ``basicsr schedule`` use the same object, and BasicSR's
pipelines receive the options it makes (``to_basicsr``), as its own ``parse_options`` would have made them.
"""
import argparse
import copy
import difflib
import os
import random

import yaml

from ..errors import CheckpointError, OptionsError
from ..files.locations import option_file
from . import preflight
from .overrides import basicsr_value, check_values, override_value


def read_yml(path):
    """A yml file as a dict (OptionsError when it is not valid YAML or not a mapping)."""
    try:
        with open(path) as f:
            opt = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise OptionsError(f'not valid YAML: {str(err).splitlines()[0]}', path) from None
    except OSError as err:
        raise OptionsError(f'cannot be read ({err.strerror})', path) from None
    if not isinstance(opt, dict):
        raise OptionsError('not a BasicSR options file (needs name, model_type, scale, datasets, network_g, path)',
                           path)
    return opt


# The GPU step settings of the stage ymls that a CPU runs slower, and what turns each off. Measured side by side
# on this project's 2-core CPU machine, same data: 20 stage-1 iterations took 72 s with compile: true and amp: bf16
# (most of it compiling) against 5.5 s with both off.
CPU_STEP = {'compile': False, 'amp': 'none'}
CPU_STEP_MEASURED = '20 stage-1 iterations took 72 s with compile and bf16, 5.5 s without'


class RunOptions:
    """The options of one ``train`` or ``test`` run.

    Args:
        path (str): the yml (one not in the working directory is looked up among the shipped option files).
        is_train (bool): a training run (else a test run).
        overrides (list[str]): ``--force_yml`` entries, ``key:subkey=value``.
        launcher, auto_resume, debug, local_rank: BasicSR's flags.
    """

    def __init__(self, path, is_train, overrides=(), launcher='none', auto_resume=False, debug=False, local_rank=0):
        self.path = option_file(path)
        self.is_train, self.launcher, self.auto_resume = is_train, launcher, auto_resume
        self.debug, self.local_rank, self.overrides = debug, local_rank, list(overrides or ())
        self.notes = []  # what the checks changed or left out, said once when the run starts
        self.overridden = set()  # the key paths --force_yml set ('train:compile')
        self.opt = read_yml(self.path)
        for entry in self.overrides:
            self._override(entry)
        self._check_structure()
        check_values(self.opt, self.path)

    @property
    def name(self):
        """The run's name as BasicSR will use it (``debug_`` prefixed in a debug training run)."""
        name = str(self.opt['name'])
        return 'debug_' + name if self.debug and self.is_train and not name.startswith('debug') else name

    # ------------------------------------------------------------------------------------------- overrides
    def _override(self, entry):
        """``key:subkey=value``, as BasicSR's ``--force_yml`` (which cannot add keys), the value read as BasicSR
        reads it and checked by the table of keys (``overrides``); the first ``=`` separates key and value."""
        if '=' not in entry:
            raise OptionsError(f"entries look like key:subkey=value, got '{entry}'", 'force_yml')
        keys, value = (part.strip() for part in entry.split('=', 1))
        node = self.opt
        *parents, leaf = keys.split(':')
        for key in parents:
            if not isinstance(node.get(key), dict):
                raise OptionsError(f"{entry}: the options have no '{key}' section", 'force_yml')
            node = node[key]
        if leaf not in node:  # a typo would otherwise be added as a new key and silently ignored
            close = difflib.get_close_matches(leaf, [str(k) for k in node], 1)
            where = ':'.join(parents) or 'the top level'
            raise OptionsError(f"{entry}: the options have no '{leaf}' in {where}"
                               + (f" (did you mean '{close[0]}'?)" if close else '; add it to the yml instead'),
                               'force_yml')
        if parents == ['datasets'] and basicsr_value(value) is None:
            raise OptionsError(f'{entry}: a dataset cannot be removed this way (BasicSR would crash on it); copy the '
                               f'yml and delete datasets.{leaf} there', 'force_yml')
        node[leaf] = override_value(keys, value, node[leaf], entry)
        self.overridden.add(keys)

    # ---------------------------------------------------------------------------------------------- checks
    def _fail(self, reason):
        raise OptionsError(reason, self.path)

    def _check_structure(self):
        """The sections BasicSR reads without checking, present and of the right kind."""
        opt, is_train = self.opt, self.is_train
        needed = ['name', 'model_type', 'scale', 'datasets', 'network_g', 'path'] + (['train'] if is_train else [])
        missing = [k for k in needed if opt.get(k) is None]
        if missing:
            self._fail(f"has no {', '.join(missing)}: a BasicSR {'training' if is_train else 'test'} options file "
                       f"needs {', '.join(needed)} (see options/)")
        for key in ('datasets', 'network_g', 'path') + (('train',) if is_train else ()):
            if not isinstance(opt[key], dict):
                self._fail(f'{key} must be a mapping of names to settings, not a {type(opt[key]).__name__}')
        for phase, ds in opt['datasets'].items():
            if not isinstance(ds, dict) or 'type' not in ds:
                self._fail(f'datasets.{phase} must be a mapping with a type (e.g. PairedImageDataset)')
            if phase != 'train' and not phase.startswith(('val', 'test')):
                self._fail(f'datasets.{phase}: BasicSR knows the phases train, val* and test* only')
        if 'type' not in opt['network_g']:
            self._fail('network_g has no type (e.g. type: PFDN)')
        if is_train and 'train' not in opt['datasets']:
            self._fail('datasets has no train entry to train on')
        if not is_train and not opt['path'].get('pretrain_network_g'):
            self._fail('path.pretrain_network_g is not set: testing needs the weights to test')
        # keys BasicSR's pipelines index without a default: missing, they fail after the work is done
        required = {'val': ('save_img',) + (('val_freq',) if is_train else ())}
        if is_train:
            required.update(logger=('print_freq', 'save_checkpoint_freq'), train=('total_iter',))
        for section, keys in required.items():
            if section == 'val' and opt.get('val') is None:
                continue  # no validation at all is fine
            if not isinstance(opt.get(section), dict):
                self._fail(f'{section} must be a mapping with {", ".join(keys)}')
            absent = [k for k in keys if opt[section].get(k) is None]
            if absent:
                self._fail(f'{section} has no {", ".join(absent)}, which BasicSR needs')

    def check(self, pretrained=True):
        """Catch the common mistakes before BasicSR turns them into tracebacks, before anything is written (the
        named checks of ``preflight`` and the ones below). ``pretrained=False`` leaves out the checkpoint paths (a
        schedule's later stages read what earlier ones make). Returns self."""
        import torch
        from basicsr.utils.registry import MODEL_REGISTRY

        opt = self.opt
        preflight.check_launcher(self.launcher)
        if opt.get('num_gpu', 0) not in (0, 'auto') and not torch.cuda.is_available():
            self._fail(f'asks for num_gpu: {opt["num_gpu"]} but CUDA is not available; set num_gpu: 0 (or auto) to '
                       'run on the CPU')
        if self.is_train:
            self._check_numbers()
        else:
            self._leave_out_missing_test_sets()
        networks = preflight.check_networks(opt)  # before the data: a scale the network lacks explains LR sizes
        for phase, ds in opt['datasets'].items():
            self._check_dataset(phase, ds)  # the folders named first: a missing one is the likelier mistake
            preflight.check_dataset_keys(phase, ds)
            note = preflight.check_crops(phase, ds, opt['scale'])
            if note:
                self.notes.append(note)
        self._check_registered()
        model = MODEL_REGISTRY.get(opt['model_type'])
        if self.is_train:
            preflight.check_scheduler(opt)
            preflight.check_optimizers(opt, model)
            preflight.check_losses(opt)
        preflight.check_metrics(opt)
        self._check_loggers()
        if self.is_train:
            preflight.check_tensorboard(opt, self.name)
        for key, value in (opt.get('path') or {}).items() if pretrained else ():
            if not (value and key.startswith('pretrain_network')):
                continue
            path = os.path.expanduser(value)
            if not os.path.isfile(path):
                if self.auto_resume and key == 'pretrain_network_g' and self.is_train:
                    continue  # an auto-resumed stage loads its own save instead
                raise OptionsError(f'not found: {value} (put the checkpoint there)', f'path.{key}')
            self._check_param_keys(key, path)
            net = key[len('pretrain_'):]
            if net in networks:
                suffix = net.split('_')[-1]
                preflight.check_checkpoint_fits(model, *networks[net], path,
                                                opt['path'].get(f'param_key_{suffix}', 'params'),
                                                opt['path'].get(f'strict_load_{suffix}', True))
        if self.is_train and (self.auto_resume or opt['path'].get('resume_state')):
            self._check_resumable_form()
        return self

    def _leave_out_missing_test_sets(self):
        """A test yml scores the benchmark sets that exist: one whose folders are not there is left out with a note
        (a user with Set5 alone runs the shipped yml as it is); none there is one error line."""
        datasets, missing = self.opt['datasets'], {}
        for phase, ds in list(datasets.items()):
            absent = [ds[k] for k in ('dataroot_gt', 'dataroot_lq') if ds.get(k)
                      and not os.path.exists(os.path.expanduser(ds[k]))]
            if absent and phase.startswith('test'):
                missing[phase] = (ds.get('name', phase), absent[0])
        if missing and len(missing) == len(datasets):
            shown = ', '.join(f'{name} ({root})' for name, root in missing.values())
            raise OptionsError(f'none of its test sets is there: {shown} not found; make them with basicsr prepare '
                               'benchmark --hr <folder of HR images> --name <set> (datasets/README.md)', self.path)
        for phase, (name, root) in missing.items():
            del datasets[phase]
            self.notes.append(f'datasets.{phase} ({name}) is left out: {root} not found (basicsr prepare benchmark '
                              f'--hr <its HR folder> --name {name} makes it)')

    def _check_numbers(self):
        """The numbers of a training run that BasicSR takes as they come: a run of no iterations saves an untrained
        network as if it had trained; a patch that is not a multiple of the scale, or smaller than PFDN's smallest
        input, fails deep in the model."""
        from ..archs.esa import MIN_INPUT_SIZE

        opt, scale = self.opt, self.opt['scale']

        def integer(value, where, least):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise OptionsError(f'must be a whole number of at least {least}, got {value!r}', where)
        integer(opt['train']['total_iter'], 'train.total_iter', 1)
        integer(scale, 'scale', 1)
        ds = opt['datasets']['train']
        for key, least in (('batch_size_per_gpu', 1), ('num_worker_per_gpu', 0)):
            if key in ds:
                integer(ds[key], f'datasets.train.{key}', least)
        gt_size = ds.get('gt_size')
        if gt_size is not None:
            integer(gt_size, 'datasets.train.gt_size', scale)
            if gt_size % scale:
                raise OptionsError(f'{gt_size} is not a multiple of the scale {scale} (the LR patch is gt_size / '
                                   f'scale): use {gt_size - gt_size % scale} or {gt_size - gt_size % scale + scale}',
                                   'datasets.train.gt_size')
            nets = [opt.get(k) or {} for k in ('network_g', 'network_t')]
            if any(n.get('type') == 'PFDN' for n in nets) and gt_size // scale < MIN_INPUT_SIZE:
                raise OptionsError(f'{gt_size} makes LR patches of {gt_size // scale} pixels, smaller than PFDN\'s '
                                   f'smallest input ({MIN_INPUT_SIZE}): use at least {MIN_INPUT_SIZE * scale}',
                                   'datasets.train.gt_size')

    def _check_resumable_form(self):
        """Resuming restores the optimizer of the saved network; a network of the other form (``network_g.deploy``
        switched since) has other parameters, and BasicSR would fail in the optimizer."""
        if (self.opt['network_g'] or {}).get('type') != 'PFDN':
            return
        from ..archs.convert import is_training_form, unwrap_state_dict
        from ..files.checkpoints import read_checkpoint_file
        from .experiment import Experiment

        exp = Experiment(self.name)
        saved = next(iter(exp.saved_iters()), None)
        if saved is None or not os.path.isfile(exp.network(saved)):
            return
        try:
            trained_deployed = not is_training_form(unwrap_state_dict(read_checkpoint_file(exp.network(saved))))
        except CheckpointError:
            return  # a damaged save: resuming sets it aside and says so
        deploy = bool(self.opt['network_g'].get('deploy', False))
        if trained_deployed != deploy:
            raise OptionsError(f'{exp.folder} was trained with network_g.deploy: {str(trained_deployed).lower()}, and '
                               f'these options say {str(deploy).lower()}: its saved optimizer cannot continue another '
                               'form. Set it back, or start a new run (another name, with path.pretrain_network_g '
                               'pointing at its network)', 'network_g.deploy')

    def _check_dataset(self, phase, ds):
        from ..data.lmdb_store import lmdb_format, verify_lmdb
        from ..errors import DataError

        for key in ('dataroot_gt', 'dataroot_lq'):
            root = ds.get(key)
            if not root:
                continue
            root = os.path.expanduser(root)
            where = f'datasets.{phase}.{key}'
            if not os.path.exists(root):
                raise OptionsError(f"not found: {ds[key]} (see datasets/README.md for 'basicsr prepare')", where)
            fmt = lmdb_format(root)
            if ds.get('type') == 'PairedCropDataset' and fmt != 'decoded':
                raise OptionsError(f'{ds[key]} is not a decoded LMDB, which PairedCropDataset reads; make one with '
                                   'basicsr prepare lmdb (or df2k), or use type: PairedImageDataset with io_backend: '
                                   '{type: ' + ('lmdb' if fmt else 'disk') + '}', where)
            if (ds.get('io_backend') or {}).get('type') == 'lmdb' and fmt != 'png':
                raise OptionsError(f'{ds[key]} is not a PNG LMDB made for BasicSR' + (
                    ' (it holds decoded pixels: use type: PairedCropDataset)' if fmt else ' (no meta_info.txt)'), where)
            if fmt is not None:
                try:
                    pairs = verify_lmdb(root)
                except DataError as err:
                    raise OptionsError(f'{ds[key]}: {err.reason}', where) from None
                self._check_enough(phase, ds, pairs)
        self._check_pairs(phase, ds)

    def _check_enough(self, phase, ds, pairs):
        """BasicSR's training loader drops the last incomplete batch: fewer pairs (times dataset_enlarge_ratio) than
        a batch makes an epoch of no iterations, and the run ends at once with an untrained network."""
        if phase != 'train':
            return
        batch = ds.get('batch_size_per_gpu', 1)
        if pairs * ds.get('dataset_enlarge_ratio', 1) < batch:
            raise OptionsError(f'{pairs} pair(s) x dataset_enlarge_ratio {ds.get("dataset_enlarge_ratio", 1)} do not '
                               f'fill one batch of {batch}: lower batch_size_per_gpu or raise dataset_enlarge_ratio',
                               f'datasets.{phase}')

    def _check_pairs(self, phase, ds):
        """Folder-based PairedImageDataset: every GT has its LR and their sizes agree with the scale (BasicSR asserts
        it mid-run: in training, after a checkpoint was written)."""
        if ds.get('type') != 'PairedImageDataset' or (ds.get('io_backend') or {}).get('type') != 'disk':
            return
        from ..errors import ImageError
        from ..files.images import image_size, list_images

        scale = self.opt['scale']
        gt_dir, lq_dir = (os.path.expanduser(ds[k]) for k in ('dataroot_gt', 'dataroot_lq'))
        template = ds.get('filename_tmpl', '{}')
        gts = list_images(gt_dir)
        if not gts:
            raise OptionsError(f'no images in {ds["dataroot_gt"]}', f'datasets.{phase}.dataroot_gt')
        self._check_enough(phase, ds, len(gts))
        for gt in gts:
            stem, ext = os.path.splitext(os.path.basename(gt))
            lq = os.path.join(lq_dir, template.format(stem) + ext)
            if not os.path.isfile(lq):
                raise OptionsError(f'{gt} has no LR image {lq}', f'datasets.{phase}')
            try:
                (gh, gw), (lh, lw) = image_size(gt), image_size(lq)
            except ImageError:
                continue  # the dataset's own reading reports what it cannot decode
            # training crops need GT = LR x scale; evaluation crops GT to LR x scale, so there the LR must be the
            # scale-cropped GT's: an LR a few pixels short would be scored against a cropped GT
            exact = phase == 'train'
            if (lw * scale, lh * scale) != (gw, gh) if exact else (lw, lh) != (gw // scale, gh // scale):
                raise OptionsError(f'{os.path.basename(lq)} is {lw}x{lh}, x{scale} = {lw * scale}x{lh * scale}, but '
                                   f'its GT is {gw}x{gh}; the LR images must be the GT downscaled x{scale} (basicsr '
                                   'prepare benchmark / lr make such pairs)', f'datasets.{phase}')

    def _check_registered(self):
        """Every ``type`` the yml names is in BasicSR's registry of its kind (BasicSR raises a KeyError otherwise,
        after the experiment folder was made)."""
        from basicsr.utils import registry as r

        opt = self.opt
        wanted = [('model_type', r.MODEL_REGISTRY, opt.get('model_type'))]
        wanted += [(f'{k}.type', r.ARCH_REGISTRY, opt[k].get('type')) for k in ('network_g', 'network_d', 'network_t')
                   if isinstance(opt.get(k), dict)]
        wanted += [(f'datasets.{p}.type', r.DATASET_REGISTRY, ds.get('type')) for p, ds in opt['datasets'].items()]
        if self.is_train:
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
            self._fail(f"{where} '{name}' is not in BasicSR's {registry._name} registry"
                       + (f" (did you mean '{close[0]}'?)" if close else ''))
        model = r.MODEL_REGISTRY.get(opt['model_type'])
        if hasattr(model, 'check_options'):  # a model's own needs (PFDNQATModel), said before anything is written
            model.check_options(opt, self.is_train)
        for phase, ds in opt['datasets'].items():
            if ds.get('uint8_batches') and not getattr(model, 'converts_uint8_batches', False):
                self._fail(f"datasets.{phase}.uint8_batches needs a model that converts uint8 batches on the device "
                           f"(PFDNModel); {opt['model_type']} expects floats: remove the option")

    def _check_loggers(self):
        """A wandb project without the wandb package, or without TensorBoard (BasicSR syncs wandb from it), fails
        in BasicSR after the experiment folder was made."""
        import importlib.util

        logger = self.opt.get('logger') or {}
        wandb = logger.get('wandb') or {}
        if not wandb.get('project') or 'debug' in self.name:
            return
        if importlib.util.find_spec('wandb') is None:
            raise OptionsError('the wandb package is not installed: pip install wandb, or remove logger.wandb',
                               'logger.wandb.project')
        if logger.get('use_tb_logger') is not True:
            raise OptionsError('needs logger.use_tb_logger: true (BasicSR syncs wandb from TensorBoard)',
                               'logger.wandb')

    def _check_param_keys(self, key, path):
        """The entry BasicSR's model will read from a checkpoint is there. PFDNModel reads bare state dicts (like
        the released weights) and BasicSR's {'params', 'params_ema'} alike; BasicSR's own models index the file
        with ``param_key`` (falling back from a missing one to 'params' only), and with EMA on also ask for
        'params_ema'."""
        from ..files.checkpoints import read_checkpoint_file

        net = key[len('pretrain_'):]  # network_g, network_t, ...
        key_name = f"param_key_{net.split('_')[-1]}"
        param_key = (self.opt.get('path') or {}).get(key_name, 'params')
        try:
            obj = read_checkpoint_file(path)
        except CheckpointError as err:
            raise OptionsError(f'{path}: {err.reason}', f'path.{key}') from None
        wrapped = isinstance(obj, dict) and any(k in obj for k in ('params', 'params_ema'))
        if self._model_loads_bare_state_dicts():
            if wrapped and param_key is not None and param_key not in obj and 'params' not in obj:
                raise OptionsError(f"{path} has no '{param_key}' entry (it has {', '.join(sorted(obj))})",
                                   f'path.{key_name}')
            return
        wanted = [param_key] if param_key is not None else []
        if self.is_train and net == 'network_g' and (self.opt.get('train') or {}).get('ema_decay', 0) > 0:
            wanted.append('params_ema')
        for k in wanted:
            if not (wrapped and (k in obj or 'params' in obj)):
                what = "a bare state dict (no 'params' entry)" if not wrapped else f"without a '{k}' entry"
                raise OptionsError(f"{path} is {what}, which {self.opt.get('model_type')} cannot load with "
                                   f'{key_name}: {param_key}' + (' and EMA on' if k == 'params_ema' else '')
                                   + '. Use model_type: PFDNModel (it loads either form), or set '
                                   f'{key_name}: ~ for a bare state dict', f'path.{key}')

    def _model_loads_bare_state_dicts(self):
        """PFDNModel and its subclasses (PFDNQATModel) load bare state dicts; BasicSR's models do not."""
        from basicsr.utils.registry import MODEL_REGISTRY

        from ..models.pfdn_model import PFDNModel

        try:
            model = MODEL_REGISTRY.get(self.opt.get('model_type'))
        except KeyError:
            return False
        return isinstance(model, type) and issubclass(model, PFDNModel)

    # ---------------------------------------------------------------------------------------- hand-off
    def cpu_adjustments(self):
        """Options a yml carries that cannot work here, dropped: without CUDA, the GPU-only data options (the CUDA
        prefetcher's stream, pinned memory) and the GPU step settings a CPU runs slower (``CPU_STEP``) unless
        ``--force_yml`` set them; without DataLoader workers, persistent workers (torch refuses them). Returns a note
        per change, after the checks' own notes."""
        import torch

        notes = list(self.notes)
        for phase, ds in (self.opt.get('datasets') or {}).items():
            if ds.get('persistent_workers') and not ds.get('num_worker_per_gpu'):
                ds['persistent_workers'] = False
                notes.append(f'datasets.{phase}.persistent_workers: true has no workers to keep (num_worker_per_gpu: '
                             '0) and is ignored')
        if torch.cuda.is_available():
            return notes
        for phase, ds in (self.opt.get('datasets') or {}).items():
            if ds.get('prefetch_mode') == 'cuda':
                ds['prefetch_mode'] = None
                notes.append(f'CUDA is not available; datasets.{phase}.prefetch_mode: cuda is ignored')
            if ds.get('pin_memory'):
                ds['pin_memory'] = False
                notes.append(f'CUDA is not available; datasets.{phase}.pin_memory: true is ignored')
        train = self.opt.get('train') or {}
        for key, off in CPU_STEP.items() if self.is_train else ():
            if train.get(key) not in (None, False, off) and f'train:{key}' not in self.overridden:
                notes.append(f'CUDA is not available; train.{key}: {str(train[key]).lower()} is turned off (slower '
                             f'on a CPU: {CPU_STEP_MEASURED}); --force_yml train:{key}={str(train[key]).lower()} '
                             'keeps it')
                train[key] = off
        return notes

    def to_basicsr(self, root):
        """(opt, args) as BasicSR's ``parse_options(root, is_train)`` makes them from the command line: distributed
        init, seeding (seed + rank), derived paths under ``root``."""
        import torch
        from basicsr.utils import set_random_seed
        from basicsr.utils.dist_util import get_dist_info, init_dist

        opt = copy.deepcopy(self.opt)
        if self.launcher == 'none':
            opt['dist'] = False
            print('Disable distributed.', flush=True)
        else:
            opt['dist'] = True
            if self.launcher == 'slurm' and 'dist_params' in opt:
                init_dist(self.launcher, **opt['dist_params'])
            else:
                init_dist(self.launcher)
        opt['rank'], opt['world_size'] = get_dist_info()
        if opt.get('manual_seed') is None:
            opt['manual_seed'] = random.randint(1, 10000)
        set_random_seed(opt['manual_seed'] + opt['rank'])
        opt['auto_resume'], opt['is_train'], opt['name'] = self.auto_resume, self.is_train, self.name
        if opt.get('num_gpu') == 'auto':
            opt['num_gpu'] = torch.cuda.device_count()
        for phase, ds in opt['datasets'].items():
            ds['phase'] = phase.split('_')[0]
            if 'scale' in opt:
                ds['scale'] = opt['scale']
            for key in ('dataroot_gt', 'dataroot_lq'):
                if ds.get(key) is not None:
                    ds[key] = os.path.expanduser(ds[key])
        for key, value in opt['path'].items():
            if value is not None and ('resume_state' in key or 'pretrain_network' in key):
                opt['path'][key] = os.path.expanduser(value)
        if self.is_train:
            from .experiment import Experiment

            exp = Experiment(opt['name'], root)
            opt['path'].update(experiments_root=exp.folder, models=exp.models, training_states=exp.training_states,
                               log=exp.folder, visualization=exp.visualization)
            if 'debug' in opt['name']:
                if opt.get('val'):
                    opt['val']['val_freq'] = 8
                opt['logger'].update(print_freq=1, save_checkpoint_freq=8)
        else:
            root_dir = os.path.join(root, 'results', opt['name'])
            opt['path'].update(results_root=root_dir, log=root_dir, visualization=os.path.join(root_dir, 'visualization'))
        args = argparse.Namespace(opt=self.path, launcher=self.launcher, auto_resume=self.auto_resume,
                                  debug=self.debug, local_rank=self.local_rank, force_yml=self.overrides or None)
        return opt, args
