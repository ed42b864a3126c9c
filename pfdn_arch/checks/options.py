"""One run's options, parsed once: the yml, BasicSR's flags (``--launcher``, ``--auto_resume``, ``--debug``,
``--force_yml``), and the checks that catch what BasicSR would otherwise throw mid-run. ``basicsr train``, ``basicsr
test``, ``python -m basicsr.train|test`` and every stage of ``basicsr schedule`` use the same object; BasicSR's own
``parse_options`` reads the result as a yml (``resolved_yml``).
"""
from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator, List, Sequence, Set, Tuple

import torch
import yaml

from basicsr.utils.registry import MODEL_REGISTRY

from ..errors import OptionsError
from ..files.atomic import write_text
from ..layout.locations import is_released, option_file
from ..models.train_step import AMP_OFF
from . import datasets, preflight
from .overrides import basicsr_value, check_values, override_value


def read_yml(path: str) -> dict:
    """A yml file as a dict (OptionsError when it is not valid YAML or not a mapping)."""
    try:
        with open(path) as f:
            opt = yaml.safe_load(f)
    except yaml.YAMLError as err:
        mark = getattr(err, 'problem_mark', None)
        where = f' at line {mark.line + 1}, column {mark.column + 1}' if mark is not None else ''
        what = getattr(err, 'problem', None) or str(err).splitlines()[0]
        raise OptionsError(f'not valid YAML{where}: {what}', path) from None
    except OSError as err:
        raise OptionsError(f'cannot be read ({err.strerror})', path) from None
    if not isinstance(opt, dict):
        raise OptionsError('not a BasicSR options file (needs name, model_type, scale, datasets, network_g, path)',
                           path)
    return opt


# The GPU step settings of the stage ymls that a CPU runs slower, and what turns each off (compiling dominates a
# short CPU run; the measurement: docs/benchmarks.md, "Training on a CPU").
CPU_STEP = {'compile': False, 'amp': AMP_OFF}
RELEASED = '_released'  # the shipped test ymls' names end so: the results of the released weights
CPU_STEP_MEASURED = 'docs/benchmarks.md, "Training on a CPU"'  # how much slower, measured


class RunOptions:
    """The options of one ``train`` or ``test`` run.

    Args:
        path (str): the yml (one not in the working directory is looked up among the shipped option files).
        is_train (bool): a training run (else a test run).
        overrides (list[str]): ``--force_yml`` entries, ``key:subkey=value``.
        launcher, auto_resume, debug, local_rank: BasicSR's flags.
    """

    def __init__(self, path: str, is_train: bool, overrides: Sequence[str] = (), launcher: str = 'none',
                 auto_resume: bool = False, debug: bool = False, local_rank: int = 0):
        self.path = option_file(path)
        self.is_train, self.launcher, self.auto_resume = is_train, launcher, auto_resume
        self.debug, self.local_rank, self.overrides = debug, local_rank, list(overrides or ())
        self.notes: List[str] = []  # what the checks changed or left out, said once when the run starts
        self.overridden: Set[str] = set()  # the key paths --force_yml set ('train:compile')
        self.opt = read_yml(self.path)
        for entry in self.overrides:
            self._override(entry)
        self._check_structure()
        check_values(self.opt, self.path)

    @property
    def name(self) -> str:
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

    def check(self, pretrained: bool = True) -> 'RunOptions':
        """Catch the common mistakes before BasicSR turns them into tracebacks, before anything is written (the
        named checks of ``preflight`` and the ones below). ``pretrained=False`` leaves out the checkpoint paths (a
        schedule's later stages read what earlier ones make). Returns self."""
        opt = self.opt
        preflight.check_launcher(self.launcher)
        if opt.get('num_gpu', 0) not in (0, 'auto') and not torch.cuda.is_available():
            self._fail(f'asks for num_gpu: {opt["num_gpu"]} but CUDA is not available; set num_gpu: 0 (or auto) to '
                       'run on the CPU')
        if self.is_train:
            preflight.check_patch_size(opt)
            preflight.check_patch_fits_networks(opt)
        else:
            datasets.leave_out_missing_test_sets(opt, self.path, self.notes)
        datasets.check_checkpoint_paths(opt)
        missing = datasets.missing_inputs(opt, self.is_train, pretrained, self.auto_resume)
        if missing:  # all of them at once, each with what makes it: not one per attempt
            self._fail(datasets.describe_missing(missing))
        if not self.is_train:
            self._name_after_weights()
        networks = preflight.check_networks(opt)  # before the data: a scale the network lacks explains LR sizes
        for phase, ds in opt['datasets'].items():
            datasets.check_dataset(opt, phase, ds)  # the folders named first: a missing one is likelier
            datasets.check_dataset_keys(phase, ds)
            note = datasets.check_crops(phase, ds, opt['scale'])
            if note:
                self.notes.append(note)
        preflight.check_registered(opt, self.is_train, self.path)
        model = MODEL_REGISTRY.get(opt['model_type'])
        if self.is_train:
            preflight.check_scheduler(opt)
            preflight.check_optimizers(opt, model)
            preflight.check_losses(opt)
        preflight.check_metrics(opt)
        preflight.check_loggers(opt, self.name)
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
            preflight.check_param_keys(opt, self.is_train, key, path)
            net = key[len('pretrain_'):]
            if net in networks:
                suffix = net.split('_')[-1]
                preflight.check_checkpoint_fits(model, *networks[net], path,
                                                opt['path'].get(f'param_key_{suffix}', 'params'),
                                                opt['path'].get(f'strict_load_{suffix}', True))
        if self.is_train and (self.auto_resume or opt['path'].get('resume_state')):
            preflight.check_resumable_form(opt, self.name)
        return self

    def _name_after_weights(self):
        """A shipped test yml is named after the released weights (``PFDN_x4_released``); other weights given to it
        get results named after them (``PFDN_x4_<their file's stem>``), never a folder named for weights it did not
        run."""
        name, weights = str(self.opt['name']), self.opt['path'].get('pretrain_network_g')
        if not (name.endswith(RELEASED) and weights and os.path.isfile(os.path.expanduser(weights))):
            return
        if is_released(os.path.expanduser(weights)):
            return
        stem = re.sub(r'[^A-Za-z0-9_.-]+', '_', os.path.splitext(os.path.basename(weights))[0]) or 'weights'
        self.opt['name'] = name[:-len(RELEASED)] + '_' + stem
        self.notes.append(f'results go to results/{self.opt["name"]}/: {weights} is not the released weights file '
                          f'that {name} is named after')

    # ---------------------------------------------------------------------------------------- hand-off
    def cpu_adjustments(self) -> List[str]:
        """Options a yml carries that cannot work here, dropped: without CUDA, the GPU-only data options (the CUDA
        prefetcher's stream, pinned memory) and the GPU step settings a CPU runs slower (``CPU_STEP``) unless
        ``--force_yml`` set them; without DataLoader workers, persistent workers (torch refuses them). Returns a note
        per change, after the checks' own notes."""
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

    @contextmanager
    def resolved_yml(self) -> Iterator[str]:
        """The checked options (overrides, CPU adjustments and left-out sets applied) written as a yml of the same
        file name as the one given, in a folder of its own, for the length of the block: what BasicSR's
        ``parse_options`` reads and copies into the experiment."""
        folder = tempfile.mkdtemp(prefix='pfdn-options-')
        path = os.path.join(folder, os.path.basename(self.path))
        try:
            write_text(path, yaml.safe_dump(self.opt, sort_keys=False))
            yield path
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def to_basicsr(self, root: str) -> Tuple[dict, argparse.Namespace]:
        """(opt, args) as BasicSR's own ``parse_options(root, is_train)`` makes them from these options: its
        distributed init, seeding (seed + rank) and derived paths under ``root``."""
        from basicsr.utils.options import parse_options

        with self.command_line():
            return parse_options(root, self.is_train)

    @contextmanager
    def command_line(self) -> Iterator[None]:
        """``sys.argv`` as BasicSR's ``parse_options`` reads it, naming the checked options' yml, for the block."""
        with self.resolved_yml() as path:
            argv = sys.argv
            sys.argv = [argv[0] if argv else 'basicsr', '-opt', path, '--launcher', self.launcher,
                        '--local_rank', str(self.local_rank)] + (['--auto_resume'] if self.auto_resume else []) + (
                            ['--debug'] if self.debug else [])
            try:
                yield
            finally:
                sys.argv = argv
