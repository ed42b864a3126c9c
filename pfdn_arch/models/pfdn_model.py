"""PFDNModel: BasicSR's SRModel plus what the PFDN recipe needs (docs/method.md):

- checkpoints loaded strictly and safely, bare or wrapped, of either form: a training-form checkpoint feeding a
  deployed net (``network_g.deploy: true``) is fused exactly, which is how a stage trains the deployed form from the
  previous stage's training form;
- the layer-wise NCC loss (``train.ncc_opt``, ``ncc_teacher.py``);
- a step that scales down to small batches on a GPU (``train.amp``, ``train.channels_last``, ``train.compile``,
  fused Adam/AdamW on CUDA, ``train.grad_clip_norm``; ``train_step.py``), uint8 batches made floats on the device;
- every save also writes ``net_g_deploy_<iter>.pth`` in the released layout, atomically; validation runs the
  deployed form on ``val.backend``.

Any BasicSR arch trains under it; one that cannot reparameterize validates as it is and has no deployed saves.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, List, Tuple, Union

import torch
from torch import nn
from tqdm import tqdm

from basicsr.archs import build_network
from basicsr.metrics import calculate_metric
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, tensor2img
from basicsr.utils.dist_util import get_dist_info, master_only

from .. import stopping
from ..archs import spec_for
from ..archs.pfdn.convert import detached_copy, reparameterized
from ..data.lmdb_store import lq_sizes
from ..deploy.runtime.base import Runner
from ..deploy.runtime.build import build_runner
from ..deploy.runtime.choose import Workload
from ..errors import CheckpointError, OptionsError, TrainingDiverged
from ..files.atomic import save_torch
from ..files.checkpoints import check_fit, load_checkpoint, load_into
from ..files.images import write_image
from ..layout.experiment import Experiment, add_validation
from ..layout.progress import PROGRESS, Progress, duration, remove_progress
from .ncc_teacher import LayerwiseNCC
from .train_step import TrainStep, amp_dtype


# a stage that would train longer than this on a CPU says how to train on one in minutes instead
SLOW_ON_CPU_S = 6 * 3600


class PFDNModel(SRModel):
    """SR model for PFDN. Options beyond SRModel's (all under ``train``):

    ncc_opt (dict): ``NCCLoss`` options plus ``layers`` (module names of ``net_g`` to tap; default the four
        blocks), against ``network_t``/``path.pretrain_network_t`` when given, else SR against GT.
    grad_clip_norm (float): clip the gradient norm to this value. Default: off.
    amp (str): 'none' (fp32), 'bf16' (autocast) or 'fp16' (autocast with a gradient scaler). Default: 'none'.
    channels_last (bool): NHWC convolutions (what tensor cores want). Default: False.
    compile (bool | dict): ``torch.compile`` the training network (dict: its keyword arguments); shapes are static,
        so a stage compiles once. Default: False.
    optim_g.fused: fused Adam/AdamW (one kernel for all parameters). Default: true on CUDA, false elsewhere.
    """

    # feed_data turns uint8 batches (PairedCropDataset's uint8_batches) into floats on the device
    converts_uint8_batches = True
    # what get_optimizer builds (BasicSR's builds Adam only); the option checks read it
    optimizer_types = ('Adam', 'AdamW')  # (not ``optimizers``: BasicSR's list of the built ones)
    # load_network reads bare state dicts (the released weights) as well as BasicSR's {'params', 'params_ema'}
    loads_bare_state_dicts = True

    # what training and validation set up as they go (None until then): the optimizer step, the NCC term, the
    # validation runner, the last step's losses
    step: Any
    ncc: Any
    _runner: Any
    _losses: Any
    _lq_path: Any
    progress: Progress

    def __init__(self, opt: dict):
        self.amp_dtype = amp_dtype(opt)
        self.channels_last = bool(opt['is_train'] and (opt.get('train') or {}).get('channels_last'))
        self.ncc = self.step = self._runner = None
        self._current_iter = self._runner_iter = 0
        super().__init__(opt)

    # ------------------------------------------------------------------------------------------- networks
    @staticmethod
    def checkpoint_for(net: nn.Module, load_path: str, param_key: str = 'params') -> Tuple[dict, List[str]]:
        """The state dict ``load_network`` loads into ``net`` from ``load_path``: read ``weights_only``, bare or
        wrapped (a bare state dict serves ``params`` and ``params_ema`` alike; a missing ``params_ema`` falls back to
        ``params`` as BasicSR's does), a training-form one fused exactly for a deployed net. Returns (state_dict,
        notes for the log)."""
        notes = []
        try:
            sd = load_checkpoint(load_path, param_key)
        except CheckpointError as err:
            if param_key != 'params_ema':
                raise
            sd = load_checkpoint(load_path, 'params')  # BasicSR's own fallback when no EMA was saved
            notes.append(f'Loading: params_ema not in {load_path} ({err.reason}); using params.')
        try:
            spec = spec_for(net)  # the architecture's own filter (PFDN: its two forms); others load as they are
            sd, fused = spec.checkpoint_filter(sd, net) if spec is not None else (sd, False)
        except CheckpointError as err:
            err.path = str(load_path)
            raise
        if fused:
            notes.append(f'Reparameterized the training-form checkpoint {load_path} into the deployed form '
                         f'(exact RRRB fusion) for {net.__class__.__name__}.')
        return sd, notes

    @classmethod
    def check_checkpoint(cls, net: nn.Module, load_path: str, param_key: str = 'params', strict: bool = True) -> None:
        """Whether ``load_network`` will load ``load_path`` into ``net``, found before the run writes anything (the
        option checks call this with the network's structure alone, on the meta device); CheckpointError naming what
        does not fit."""
        sd, _ = cls.checkpoint_for(net, load_path, param_key)
        check_fit(net, sd, load_path, strict=strict)

    def load_network(self, net: nn.Module, load_path: str, strict: bool = True, param_key: str = 'params') -> None:
        """Strict, ``weights_only`` loading of either form (``checkpoint_for``)."""
        logger = get_root_logger()
        net = self.get_bare_model(net)
        sd, notes = self.checkpoint_for(net, load_path, param_key)
        for line in notes:
            logger.info(line)
        logger.info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
        missing, unexpected = load_into(net, sd, load_path, strict=strict)
        for key in missing:
            logger.warning(f'strict_load_g is false: {key} is missing from {load_path} and stays at random init')
        for key in unexpected:
            logger.warning(f'strict_load_g is false: {key} in {load_path} is not used by the network')

    def model_to_device(self, net: nn.Module) -> nn.Module:
        net = net.to(self.device)
        if self.channels_last:
            to_channels_last(net)
        return super().model_to_device(net)  # DDP on CPUs too: plugin.compat

    def reparameterizable(self) -> bool:
        """Whether network_g can be converted to a deployed form (PFDN can; BasicSR's MSRResNet, EDSR, ... cannot:
        they train and validate as they are, and no net_g_deploy_*.pth is written for them)."""
        return hasattr(self.get_bare_model(self.net_g), 'reparameterize')

    def deployed_network(self) -> nn.Module:
        """A deployed-form copy of the network validation and saving use (EMA weights when EMA is on), without the
        training network's compiled code or hooks; a network that cannot reparameterize is copied as it is."""
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.get_bare_model(self.net_g)
        return reparameterized(net) if self.reparameterizable() else detached_copy(net)

    # ------------------------------------------------------------------------------------------- training
    def init_training_settings(self) -> None:
        super().init_training_settings()  # EMA, pixel/perceptual losses, optimizer, schedulers
        train_opt = self.opt['train']
        self.step = TrainStep(self.amp_dtype, self.device, self.optimizer_g, self.net_g.parameters,
                              train_opt.get('grad_clip_norm'), self.opt['path'].get('models'))
        self._losses = OrderedDict()
        self._current_iter = 0
        ncc_opt = train_opt.get('ncc_opt')
        if ncc_opt and ncc_opt.get('loss_weight', 1.0) > 0:
            self.ncc = LayerwiseNCC(ncc_opt, self.get_bare_model(self.net_g), self._teacher(), self.device)
            get_root_logger().info(f'NCC loss on {self.ncc.describe()}')
        self._compile()
        self.progress = self._progress()
        if not self.reparameterizable():
            get_root_logger().info(f'{type(self.get_bare_model(self.net_g)).__name__} has no reparameterize(): it '
                                   'trains and validates as it is, and no net_g_deploy_*.pth files are written.')

    def _progress(self) -> Progress:
        """The progress lines from the first seconds (``layout/progress.py``); on a CPU, a stage that would take more
        than ``SLOW_ON_CPU_S`` says how to train in minutes instead. Only the first process of a distributed run
        says them."""
        logger, folder = get_root_logger(), self.opt['path'].get('experiments_root')
        record = os.path.join(folder, PROGRESS) if folder and get_dist_info()[0] == 0 else None
        if record:
            remove_progress(record)

        def say(line: str) -> None:
            if get_dist_info()[0] != 0:
                return
            logger.info(line)
            left = self.progress.eta(self._current_iter)
            if self.progress.lines == 0 and self.device.type == 'cpu' and left is not None and left > SLOW_ON_CPU_S:
                logger.info(f'on a CPU this stage takes {duration(left)}: basicsr schedule --profile cpu --hr '
                            '<your photos> trains the recipe in minutes (docs/training.md, "Training on a CPU")')

        return Progress(self.opt['train']['total_iter'], self.opt['logger'].get('print_freq', 100), say, record)

    def _teacher(self):
        """``network_t`` loaded from ``path.pretrain_network_t``, or None."""
        if self.opt.get('network_t') is None:
            return None
        path = self.opt['path'].get('pretrain_network_t')
        if path is None:
            raise OptionsError('network_t is set but this is not: a teacher must be trained weights, never a random '
                               'init', 'path.pretrain_network_t')
        net_t = build_network(self.opt['network_t']).to(self.device)
        if self.channels_last:
            to_channels_last(net_t)
        self.load_network(net_t, path, True, self.opt['path'].get('param_key_t', 'params'))
        return net_t

    def _compile(self):
        """``train.compile``: the training network (and the teacher) compiled in place, with static shapes (keys,
        DDP and hooks unchanged). Validation and saving use uncompiled deployed copies, so the compiled graph only
        sees the training shape and compiles once per stage."""
        opts = self.opt['train'].get('compile')
        if not opts:
            return
        kwargs = dict(opts) if isinstance(opts, dict) else {}
        kwargs.setdefault('dynamic', False)
        get_root_logger().info(f'Compiling the training network with torch.compile({kwargs}); the first '
                               'iteration takes longer.')
        self.get_bare_model(self.net_g).compile(**kwargs)
        if self.ncc is not None and self.ncc.teacher is not None:
            self.ncc.teacher.compile(**kwargs)

    def get_optimizer(self, optim_type: str, params: list, lr: float, **kwargs: Any) -> torch.optim.Optimizer:
        if optim_type not in ('Adam', 'AdamW'):
            return super().get_optimizer(optim_type, params, lr, **kwargs)
        # fused: one kernel updates every parameter (the unfused step is ~10 launches per tensor on a GPU)
        kwargs.setdefault('fused', self.device.type == 'cuda')
        return (torch.optim.AdamW if optim_type == 'AdamW' else torch.optim.Adam)(params, lr, **kwargs)

    def feed_data(self, data: dict) -> None:
        self.lq = self._to_device(data['lq'])
        if 'gt' in data:
            self.gt = self._to_device(data['gt'])
        self._lq_path = data.get('lq_path')

    def _to_device(self, t):
        """uint8 batches travel as bytes and become float in [0, 1] on the device."""
        t = t.to(self.device, non_blocking=True)
        if not t.is_floating_point():
            t = t.float().div_(255)  # the same values as BasicSR's img / 255. on the host
        if self.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def optimize_parameters(self, current_iter: int) -> None:
        stopping.check()  # every iteration: a Ctrl-C whose first raise was lost still stops training
        self._current_iter = current_iter
        self.optimizer_g.zero_grad(set_to_none=True)
        with self.step.autocast():
            self.output = self.net_g(self.lq)
            losses = OrderedDict()
            if self.cri_pix:
                losses['l_pix'] = self.cri_pix(self.output, self.gt)
            if self.cri_perceptual:
                l_percep, l_style = self.cri_perceptual(self.output, self.gt)
                losses.update((k, v) for k, v in (('l_percep', l_percep), ('l_style', l_style)) if v is not None)
            if self.ncc is not None:
                losses['l_ncc'] = self.ncc(self.lq, self.output, self.gt)
            total = sum(losses.values())
        self.step.backward_and_step(total, losses, current_iter)
        self._losses = OrderedDict((k, v.detach()) for k, v in losses.items())  # reduced only when logged
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)
        self.progress.step(current_iter)

    def get_current_log(self) -> dict:
        self.step.check(self._current_iter)
        return self.reduce_loss_dict(self._losses)

    @torch.no_grad()
    def model_ema(self, decay: float = 0.999) -> None:
        # one multi-tensor lerp instead of BasicSR's two kernels per parameter: ema += (1 - decay) (net - ema)
        net_g = self.get_bare_model(self.net_g)
        torch._foreach_lerp_(list(self.net_g_ema.parameters()), list(net_g.parameters()), 1 - decay)

    # ----------------------------------------------------------------------------------------- validation
    def validation_network(self) -> Runner:
        """What validation and testing run: the deployed network on ``val.backend`` (auto: the cheapest for this
        run's validations, ``runtime.choose.Workload``; torch: the plain eager reference) in ``val.dtype`` (fp32
        default). One runner for the whole run: later validations give it the new weights (``refresh``), so they
        cost forwards, not builds. A runtime or precision that is missing falls back with a logged note."""
        if self._runner is None:
            val_opt = self.opt.get('val') or {}
            workload = validation_workload(self.opt)
            self._runner = build_runner(self.deployed_network(), val_opt.get('backend', 'auto'), self.device,
                                        val_opt.get('dtype', 'fp32'), warn=get_root_logger().warning,
                                        workload=workload, streams=1 if self.is_train else torch.get_num_threads())
            get_root_logger().info(f'Validation runs on {self._runner} for {workload}.')
        elif self.is_train and self._runner_iter != self._current_iter:  # trained since: the new weights
            self._runner.refresh(self.deployed_network())
        self._runner_iter = self._current_iter
        return self._runner

    def nondist_validation(self, dataloader: Any, current_iter: int, tb_logger: Any, save_img: bool) -> None:
        if self.is_train and self.step is not None:
            self.step.check(current_iter)
        self._val_dataset = dataloader.dataset.opt.get('name', 'val')
        runner = self.validation_network()
        val_opt = self.opt['val']
        if runner.streams > 1 and val_opt.get('metrics') and not save_img and not val_opt.get('save_comparison'):
            self._validation_in_streams(dataloader, current_iter, tb_logger, runner)
        else:
            super().nondist_validation(dataloader, current_iter, tb_logger, save_img)

    def _validation_in_streams(self, dataloader, current_iter, tb_logger, runner):
        """SRModel's validation of metrics, with the runtime's streams each taking a whole image (read, forward,
        metrics) on a thread of its own: on a CPU the single-threaded streams keep every core busy, where one
        image at a time leaves BasicSR's metrics and decoding on one core between parallel forwards. The sums are
        taken in BasicSR's order, so the scores are the same to the last bit."""
        dataset, metrics = dataloader.dataset, self.opt['val']['metrics']
        name = dataset.opt['name']
        if not hasattr(self, 'metric_results'):
            self.metric_results = {metric: 0 for metric in metrics}
        self._initialize_best_metric_results(name)
        bar = tqdm(total=len(dataset), unit='image') if self.opt['val'].get('pbar', False) else None

        def score(index):
            data = dataset[index]
            with torch.no_grad():
                output = runner(data['lq'][None].to(self.device)).float().cpu()
            if not torch.isfinite(output).all():
                self._non_finite(os.path.basename(data['lq_path']))
            sr, gt = tensor2img([output]), tensor2img([data['gt'][None]])
            values = [calculate_metric({'img': sr, 'img2': gt}, opt_) for opt_ in metrics.values()]
            if bar is not None:
                bar.update(1)
            return values

        with ThreadPoolExecutor(runner.streams) as pool:
            scores = list(pool.map(score, range(len(dataset))))
        if bar is not None:
            bar.close()
        self.metric_results = {metric: 0 for metric in metrics}
        for values in scores:  # in image order, as SRModel sums them
            for metric, value in zip(metrics, values):
                self.metric_results[metric] += value
        for metric in self.metric_results:
            self.metric_results[metric] /= len(scores)
            self._update_best_metric_result(name, metric, self.metric_results[metric], current_iter)
        self._log_validation_metric_values(current_iter, name, tb_logger)

    def _log_validation_metric_values(self, current_iter: Any, dataset_name: str, tb_logger: Any) -> None:
        """BasicSR's log lines, and the same figures recorded in the run's ``validation.json`` (what the schedule,
        its plot and ``results.md`` read)."""
        super()._log_validation_metric_values(current_iter, dataset_name, tb_logger)
        self._record_validation(current_iter, dataset_name)

    @master_only
    def _record_validation(self, current_iter, dataset_name):
        # a test run's "iteration" is its name (BasicSR's test_pipeline): none there. BasicSR's last validation, after
        # its loop, passes the loop's counter, which has run past total_iter: it validates total_iter's weights
        iteration = min(int(current_iter), int(self.opt['train']['total_iter'])) if self.is_train else None
        folder = self.opt['path']['experiments_root' if self.is_train else 'results_root']
        add_validation(folder, iteration, dataset_name, self.metric_results)

    def _non_finite(self, name):
        if self.is_train:
            raise TrainingDiverged(f'the network produced NaN or Inf values on {name}: training diverged; resume '
                                   'from an earlier checkpoint with a lower learning rate')
        raise CheckpointError(f'the network produced NaN or Inf values on {name}; its weights are not usable')

    def test(self) -> None:
        runner = self._runner or self.validation_network()
        with torch.no_grad():
            self.output = runner(self.lq).float()
        if not torch.isfinite(self.output).all():  # never score or save a black image
            self._non_finite(os.path.basename(self._lq_path[0]) if getattr(self, '_lq_path', None) else 'an image')
        if (self.opt.get('val') or {}).get('save_comparison'):
            self._save_comparison()

    @master_only
    def _save_comparison(self):
        """``val.save_comparison: true``: HR | bicubic | SR crops of the validation image just run, captioned, as
        ``visualization/<dataset>/<image>_HR_bicubic_PFDN.png``."""
        # imported here: evaluation imports basicsr, and importing basicsr registers (so imports) this module
        from ..evaluation.protocol import to_image
        from ..evaluation.report import comparison_strip

        paths = getattr(self, '_lq_path', None)
        path = paths[0] if isinstance(paths, (list, tuple)) and paths else paths
        if getattr(self, 'gt', None) is None or not path:
            return
        name = os.path.basename(path)
        strip = comparison_strip(to_image(self.gt), to_image(self.lq), to_image(self.output), self.opt['scale'],
                                 name=name)
        folder = os.path.join(self.opt['path']['visualization'], getattr(self, '_val_dataset', 'val'))
        os.makedirs(folder, exist_ok=True)
        write_image(os.path.join(folder, f'{os.path.splitext(name)[0]}_HR_bicubic_PFDN.png'), strip)

    # ---------------------------------------------------------------------------------------------- saving
    def save(self, epoch: int, current_iter: int) -> None:
        if self.step is not None:
            self.step.check(current_iter)
        super().save(epoch, current_iter)
        self._save_deployed(current_iter)

    @master_only
    def save_network(self, net: Union[nn.Module, List[nn.Module]], net_label: str, current_iter: int,
                     param_key: Union[str, List[str]] = 'params') -> None:
        """BasicSR's network save (``{param_key: state_dict}`` per net, no ``module.`` prefixes), written atomically;
        a failure is an error, where BasicSR logs a warning and goes on without the file."""
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        save = {key: {(k[7:] if k.startswith('module.') else k): v.detach().cpu()
                      for k, v in self.get_bare_model(n).state_dict().items()} for n, key in zip(nets, keys)}
        label = 'latest' if current_iter == -1 else current_iter
        save_torch(save, os.path.join(self.opt['path']['models'], f'{net_label}_{label}.pth'))

    @master_only
    def save_training_state(self, epoch: int, current_iter: int) -> None:
        """BasicSR's training state, plus the fp16 gradient scaler's."""
        if current_iter == -1:
            return
        state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers], **self.step.state_dict()}
        save_torch(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def resume_training(self, resume_state: dict) -> None:
        super().resume_training(resume_state)
        self.step.load_state_dict(resume_state)

    @master_only
    def _save_deployed(self, current_iter):
        if not self.reparameterizable():
            return
        label = 'latest' if current_iter == -1 else current_iter
        sd = {k: v.detach().cpu() for k, v in self.deployed_network().state_dict().items()}
        save_torch(sd, Experiment.at(self.opt['path']['experiments_root']).network(label, deployed=True))


def validation_workload(opt: dict) -> Workload:
    """The validations a run will make, for the choice of their backend: the LR sizes of its val (test) datasets,
    how many times they will run (training: every val_freq iterations and once at the end) and whether the weights
    change between runs."""
    shapes = [hw for phase, ds in (opt.get('datasets') or {}).items() if phase.split('_')[0] in ('val', 'test')
              for hw in lq_sizes(ds)]
    if not opt['is_train']:
        return Workload.of(shapes)
    val_freq = max(1, int((opt.get('val') or {}).get('val_freq') or 1))
    return Workload.of(shapes, passes=opt['train']['total_iter'] // val_freq + 1, refresh=True)


def to_channels_last(net: nn.Module) -> nn.Module:
    """NHWC weights everywhere, online RRRB branches and their identity constants included: their kernel
    recomposition then runs as plain matmuls and yields the NHWC kernel its conv wants (see ``fuse_rrrb``)."""
    return net.to(memory_format=torch.channels_last)
