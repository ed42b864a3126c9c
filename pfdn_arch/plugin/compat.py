"""Compatibility layer that lets PyPI ``basicsr==1.4.2`` run on Python 3.11+, torch 2.x and torchvision 0.17+.

BasicSR 1.4.2 (2022) is the latest release on PyPI and is not maintained for today's stack. Instead of asking
users to patch their site-packages, a few narrow shims are installed: :func:`prepare_import` before ``basicsr`` is
first imported, :func:`patch_basicsr` right after (the import hook, ``hook.py``, calls both). This is the only
module that replaces any piece of basicsr, and only for compatibility: what PFDN's recipe wants of BasicSR is in its
options and its model, and a run of BasicSR's pipelines replaces nothing (``runs/pipeline.py``).

Each shim names the upstream problem it works around and is tested by a check that fails without it
(``tests/test_compat.py``, ``tests/test_data_path.py``, ``tests/test_basicsr_routes.py``).
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Any

_PREPARED = _PATCHED = False


def _alias_functional_tensor():
    """torchvision 0.17 removed ``torchvision.transforms.functional_tensor``; ``basicsr/data/degradations.py``
    still imports ``rgb_to_grayscale`` from it, so ``import basicsr`` fails (XPixelGroup/BasicSR#663).
    The function lives on in ``torchvision.transforms.functional``; alias that module under the old name."""
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
    except ImportError:
        import torchvision.transforms.functional as functional
        sys.modules[name] = functional


def _provide_distutils():
    """Python 3.12 removed ``distutils``; ``basicsr/archs/arch_util.py`` does ``from distutils.version import
    LooseVersion``. setuptools vendors distutils as ``setuptools._distutils``; register it under the old name
    when the standard one is missing (setuptools is a declared dependency for this reason)."""
    try:
        importlib.import_module('distutils.version')
        return
    except ImportError:
        pass
    import setuptools._distutils as vendored  # noqa: F401  (imports its submodules lazily)
    import setuptools._distutils.version as vendored_version
    sys.modules['distutils'] = vendored
    sys.modules['distutils.version'] = vendored_version


def _device_agnostic_resume():
    """``basicsr.train.load_resume_state`` calls ``torch.cuda.current_device()`` to pick a map location, so
    ``resume_state`` and ``--auto_resume`` crash on machines without CUDA. It also looks for ``experiments/``
    relative to the process's working directory instead of the experiment root, and loads with the pickle
    ``torch.load`` default of its time. Replace it with a loader that maps to CUDA only when the run uses a GPU and
    loads with ``weights_only=True`` (BasicSR#706), skipping states that no longer load (a copy cut short, a full
    disk: ``Experiment.newest_resumable_state``)."""
    import torch
    import basicsr.train as train
    from basicsr.utils import check_resume

    def load_resume_state(opt):
        from ..files.checkpoints import read_training_state
        from ..layout.experiment import Experiment

        use_cuda = opt.get('num_gpu', 0) != 0 and torch.cuda.is_available()
        device = torch.device('cuda', torch.cuda.current_device()) if use_cuda else torch.device('cpu')
        if opt['auto_resume']:
            # the newest state that loads; damaged newer ones are set aside
            experiment = Experiment.at(opt['path'].get('experiments_root') or
                                       os.path.join(opt.get('root_path', '.'), 'experiments', opt['name']))
            path, state = experiment.newest_resumable_state(device)
            if path is None:
                return None
            opt['path']['resume_state'] = path
        elif opt['path'].get('resume_state'):
            state = read_training_state(opt['path']['resume_state'], device)
        else:
            return None
        check_resume(opt, state['iter'])  # BasicSR's own: path.ignore_resume_networks keeps a frozen teacher's path
        return state

    train.load_resume_state = load_resume_state


def _resume_in_basicsrs_own_script():
    """BasicSR's ``train.py`` run as a script (a git checkout's ``python basicsr/train.py``, or torchrun on it)
    defines its own ``load_resume_state`` in ``__main__``, where no patch of the module ``basicsr.train`` reaches.
    Its ``train_pipeline`` calls ``parse_options`` first, before resuming: at that call, give the script the
    device-agnostic loader too. (``python -m basicsr.train`` runs the imported module instead: ``entry.py``.)"""
    import basicsr.utils.options as options

    parse_options = options.parse_options

    def parse_options_then_fix_the_script(root_path, is_train=True):
        script = sys.modules.get('__main__')  # the script being run, found as Python keeps it (no frame inspection)
        own = getattr(script, 'load_resume_state', None)
        if getattr(own, '__module__', None) == '__main__' and getattr(own, '__qualname__', '') == 'load_resume_state':
            import basicsr.train
            script.load_resume_state = basicsr.train.load_resume_state
        return parse_options(root_path, is_train)

    options.parse_options = parse_options_then_fix_the_script


def _device_agnostic_ddp():
    """``BaseModel.model_to_device`` wraps every model in ``DistributedDataParallel(device_ids=[torch.cuda.
    current_device()])``, which fails without CUDA: BasicSR's own ``SRModel`` cannot train under torchrun on CPUs
    (gloo). Give DDP device ids only when the model is on a GPU; on CUDA nothing changes."""
    from torch.nn.parallel import DistributedDataParallel
    from basicsr.models.base_model import BaseModel

    model_to_device = BaseModel.model_to_device

    def device_agnostic_model_to_device(self, net):
        if self.opt.get('dist') and self.device.type != 'cuda':
            return DistributedDataParallel(net.to(self.device),
                                           find_unused_parameters=self.opt.get('find_unused_parameters', False))
        return model_to_device(self, net)

    BaseModel.model_to_device = device_agnostic_model_to_device


def _gloo_aware_dist_init():
    """``basicsr.utils.dist_util._init_dist_pytorch`` always calls ``torch.cuda.set_device(rank % device_count)``
    (ZeroDivisionError without CUDA) and always asks for NCCL. Pick gloo and skip set_device when CUDA is absent,
    so ``torchrun ... --launcher pytorch`` works on CPU as well; with CUDA, behaviour is unchanged."""
    import torch
    import torch.distributed as dist
    import basicsr.utils.dist_util as dist_util

    def _init_dist_pytorch(backend='nccl', **kwargs):
        if torch.cuda.is_available() and torch.cuda.device_count() > 0:
            local_rank = int(os.environ.get('LOCAL_RANK', os.environ['RANK']))
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        else:
            backend = 'gloo'
        dist.init_process_group(backend=backend, **kwargs)

    dist_util._init_dist_pytorch = _init_dist_pytorch


class WorkerSafeDataset:
    """A dataset whose pickle names this module first, so that a spawned DataLoader worker applies the layer
    before it unpickles (and so imports) the wrapped BasicSR dataset. Everything else is the wrapped dataset's."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __getitem__(self, index):
        return self.dataset[index]

    def __len__(self):
        return len(self.dataset)

    def __getattr__(self, name):  # opt, paths, ... (never called for 'dataset' itself once it is set)
        if name == 'dataset':
            raise AttributeError(name)
        return getattr(self.dataset, name)


def _spawn_safe_dataloader_workers():
    """``basicsr.utils.dist_util.init_dist`` sets the ``spawn`` start method. A spawned DataLoader worker starts a
    fresh interpreter and unpickles the dataset, which imports ``basicsr`` before anything applied this layer:
    every worker dies on ``functional_tensor`` ("DataLoader worker exited unexpectedly"), so multi-GPU training
    with ``num_worker_per_gpu > 0`` fails for BasicSR's own datasets. Hand DataLoaders with workers a
    :class:`WorkerSafeDataset` instead, whose unpickling imports ``pfdn_arch`` (and so applies this layer) first."""
    import basicsr.data as data
    import basicsr.train as train

    build_dataloader = data.build_dataloader

    def build_dataloader_with_safe_workers(dataset, dataset_opt, *args, **kwargs):
        if dataset_opt.get('phase') == 'train' and dataset_opt.get('num_worker_per_gpu', 0) > 0:
            dataset = WorkerSafeDataset(dataset)
        return build_dataloader(dataset, dataset_opt, *args, **kwargs)

    data.build_dataloader = train.build_dataloader = build_dataloader_with_safe_workers


def _later_registrations_replace_ours():
    """``basicsr.utils.registry.Registry._do_register`` asserts that a name is registered once. pfdn registers
    ``PFDN``, ``NCCLoss``, ... as soon as basicsr is imported (the start-up hook), so user code that defines its own
    ``PFDN`` afterwards (a copy of the authors' ``pfdn_arch.py`` in a BasicSR project) would die on that assertion
    in its own import. Let a later registration of one of pfdn's names replace pfdn's class, with a note; every
    other registration is BasicSR's own."""
    from basicsr.utils.registry import Registry

    from .registry import note, ours

    if getattr(Registry._do_register, '_pfdn', False):
        return
    original = Registry._do_register

    def _do_register(self, name, obj, suffix=None):
        key = f'{name}_{suffix}' if isinstance(suffix, str) else name
        taken = self._obj_map.get(key)
        if taken is not None and taken is not obj and ours(taken) and not ours(obj):
            del self._obj_map[key]
            note(f"{getattr(obj, '__module__', '?')}.{name} replaces pfdn's {name} in BasicSR's {self._name} "
                 'registry')
        return original(self, name, obj, suffix)

    _do_register._pfdn = True
    Registry._do_register = _do_register


_PYTHON_M = {'basicsr.train': 'train', 'basicsr.test': 'test'}
_MAIN = ('from {module} import *  # the names BasicSR\'s script defines, for spawned workers\n'
         'from pfdn_arch.plugin.entry import run_as_main\n'
         'run_as_main({command!r}, __name__)\n')


class _RunAsCommand:
    """The module's own loader, except for the code ``runpy`` runs as ``__main__``."""

    def __init__(self, loader: Any, module_name: str, command: str):
        self._loader, self._module_name, self._command = loader, module_name, command

    def get_code(self, fullname: str) -> Any:
        return compile(_MAIN.format(module=self._module_name, command=self._command),
                       f'<python -m {self._module_name}: pfdn_arch.plugin.entry>', 'exec')

    def __getattr__(self, name: str) -> Any:  # exec_module, create_module, get_source, ...: BasicSR's own
        return getattr(self._loader, name)


def _python_m_runs_the_command():
    """``python -m basicsr.train`` (and ``.test``) runs BasicSR's ``__main__`` block, which puts ``experiments/`` and
    ``results/`` beside the installed package (``root_path`` is two folders above its file: ``site-packages/``) and
    uses the script's own ``load_resume_state``, which needs CUDA. Make it run ``basicsr train`` (``test``) instead
    (``entry.run_as_main``): the same checks and one-line errors, with the working directory as root.

    ``python -m`` runs a module by asking its loader for the module's code (``runpy``). ``basicsr/__init__.py``
    imports ``basicsr.train`` and ``basicsr.test`` itself, so by the time ``runpy`` asks, both are imported; their
    loaders are wrapped so that ``get_code`` (what ``runpy`` executes as ``__main__``) hands control to the command
    line, while importing them (``exec_module``) stays BasicSR's own."""
    import warnings

    for module_name, command in _PYTHON_M.items():
        module = sys.modules.get(module_name)
        spec = getattr(module, '__spec__', None)
        if module is None or spec is None or spec.loader is None or isinstance(spec.loader, _RunAsCommand):
            continue
        spec.loader = module.__loader__ = _RunAsCommand(spec.loader, module_name, command)
    # runpy warns that basicsr.train was imported before it ran as __main__; here that is by design
    warnings.filterwarnings('ignore', message=r"'basicsr\.(train|test)' found in sys\.modules", category=RuntimeWarning)


def prepare_import() -> None:
    """The shims ``import basicsr`` itself needs; run before its first import."""
    global _PREPARED
    if not _PREPARED:
        _alias_functional_tensor()
        _provide_distutils()
        _PREPARED = True


def patch_basicsr() -> None:
    """The shims for BasicSR's functions; run once basicsr is imported."""
    global _PATCHED
    if not _PATCHED:
        prepare_import()
        _device_agnostic_resume()
        _resume_in_basicsrs_own_script()
        _device_agnostic_ddp()
        _gloo_aware_dist_init()
        _spawn_safe_dataloader_workers()
        _later_registrations_replace_ours()
        _python_m_runs_the_command()
        _PATCHED = True
