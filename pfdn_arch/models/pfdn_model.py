"""PFDNModel: BasicSR's SRModel plus what the PFDN recipe needs (METHOD.md sections 2-4).

- strict, safe loading of bare or wrapped checkpoints of either form: a training-form checkpoint feeding a
  deployed net (``network_g.deploy: true``) is fused exactly, with a log line; that is how a stage trains the
  deployed form from the previous stage's training form (the LR-180 step of the schedule);
- optional layer-wise NCC (``train.ncc_opt``) against a frozen teacher (``network_t``), or SR vs GT without one;
- ``train.grad_clip_norm``, ``optim_g.type: AdamW``; a non-finite loss stops the run before the weights change;
- every save also writes ``net_g_deploy_<iter>.pth`` in the released layout; validation runs the deployed form;
- a training step that scales down to small batches on a GPU (``train.amp``, ``train.channels_last``,
  ``train.compile``, fused Adam/AdamW on CUDA), uint8 batches converted on the device, and no host-device sync
  per step (losses are reduced only when logged; non-finite steps are skipped on the device and reported at the
  next log, save or validation).
"""
import copy
import os
from collections import OrderedDict
from contextlib import nullcontext

import torch

from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only

from ..archs.reparam import checkpoint_filter, detached_copy, reparameterized
from ..atomic import save_torch
from ..errors import UserError

DEFAULT_NCC_LAYERS = ('block1', 'block2', 'block3', 'block4')
AMP_DTYPES = {'none': None, 'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; the run stops without applying that step."""


class PFDNModel(SRModel):
    """SR model for PFDN. Options beyond SRModel's (all under ``train``):

    ncc_opt (dict): ``NCCLoss`` options plus ``layers`` (module names of ``net_g`` to tap; default the four
        blocks). With ``network_t``/``path.pretrain_network_t`` the taps are compared with the teacher's;
        without a teacher, SR is compared with GT.
    grad_clip_norm (float): clip the gradient norm to this value. Default: off.
    amp (str): 'none' (fp32), 'bf16' (autocast) or 'fp16' (autocast with a gradient scaler). Default: 'none'.
    channels_last (bool): NHWC convolutions (what tensor cores want). Default: False.
    compile (bool | dict): ``torch.compile`` the training network (dict: its keyword arguments, e.g.
        ``{mode: max-autotune-no-cudagraphs}``); shapes are static, so a stage compiles once. Default: False.
    optim_g.fused: fused Adam/AdamW (one kernel for all parameters). Default: true on CUDA, false elsewhere.
    """

    # feed_data turns uint8 batches (PairedCropDataset's uint8_batches) into floats on the device
    converts_uint8_batches = True

    def __init__(self, opt):
        train_opt = opt.get('train') or {}
        amp = str(train_opt.get('amp') or 'none').lower()
        if amp not in AMP_DTYPES:
            raise ValueError(f"train.amp must be one of {', '.join(AMP_DTYPES)}, got {train_opt.get('amp')}")
        self.amp_dtype = AMP_DTYPES[amp] if opt['is_train'] else None
        self.channels_last = bool(opt['is_train'] and train_opt.get('channels_last'))
        super().__init__(opt)

    # ------------------------------------------------------------------ loading
    def load_network(self, net, load_path, strict=True, param_key='params'):
        """Load strictly with ``weights_only=True``; bare state dicts (like the released weights) work for both
        ``params`` and ``params_ema``; a training-form checkpoint feeding a deployed net is fused exactly."""
        # imported here: this module is imported while BasicSR's own import registers it (pfdn_arch.plugin), when
        # pfdn_arch.checkpoint may be the module whose import started it all
        from ..checkpoint import load_checkpoint, load_into

        logger = get_root_logger()
        net = self.get_bare_model(net)
        try:
            sd = load_checkpoint(load_path, param_key)
        except Exception as err:
            if param_key != 'params_ema':
                raise
            sd = load_checkpoint(load_path, 'params')  # BasicSR's own fallback when no EMA was saved
            logger.info(f'Loading: params_ema not in {load_path} ({err}); using params.')
        try:
            sd, fused = checkpoint_filter(sd, net)
        except ValueError as err:
            raise UserError(f'{load_path}: {err}') from None
        if fused:
            logger.info(f'Reparameterized the training-form checkpoint {load_path} into the deployed form '
                        f'(exact RRRB fusion) for {net.__class__.__name__}.')
        logger.info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
        missing, unexpected = load_into(net, sd, load_path, strict=strict)
        for key in missing:
            logger.warning(f'strict_load_g is false: {key} is missing from {load_path} and stays at random init')
        for key in unexpected:
            logger.warning(f'strict_load_g is false: {key} in {load_path} is not used by the network')

    def model_to_device(self, net):
        net = net.to(self.device)
        if self.channels_last:
            to_channels_last(net)
        return super().model_to_device(net)  # DDP on CPUs too: plugin.compat

    # ----------------------------------------------------------------- training
    def init_training_settings(self):
        train_opt = self.opt['train']
        super().init_training_settings()
        self.grad_clip_norm = train_opt.get('grad_clip_norm')
        self._loss_dict = OrderedDict()
        # fp16 needs loss scaling; the scaler also skips steps whose gradients overflowed
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp_dtype == torch.float16 else None
        # With a fused optimizer, non-finite steps are detected and skipped on the device (no host sync per step)
        # and reported at the next log, save or validation; otherwise the loss is checked before each step.
        self._deferred_checks = bool(self.optimizer_g.defaults.get('fused'))
        self._bad_steps = torch.zeros((), device=self.device)
        self._checked_iter = self._current_iter = 0
        self.cri_ncc = None
        ncc_opt = copy.deepcopy(train_opt.get('ncc_opt'))
        if ncc_opt and ncc_opt.get('loss_weight', 1.0) > 0:
            self.ncc_layers = list(ncc_opt.pop('layers', DEFAULT_NCC_LAYERS))
            self.cri_ncc = build_loss(ncc_opt).to(self.device)
            self.net_t = self._build_teacher()
            if self.net_t is not None:  # without a teacher, NCC compares SR with GT: no taps
                self._student_taps = self._tap(self.get_bare_model(self.net_g), self.ncc_layers)
                self._teacher_taps = self._tap(self.net_t, self.ncc_layers)
            get_root_logger().info('NCC loss on ' + (f'layers {self.ncc_layers} against the teacher'
                                                     if self.net_t is not None else 'SR vs GT (no teacher)'))
        self.compile_network()
        if not self.reparameterizable():
            get_root_logger().info(f'{type(self.get_bare_model(self.net_g)).__name__} has no reparameterize(): it trains '
                                   'and validates as it is, and no net_g_deploy_*.pth files are written.')

    def _build_teacher(self):
        if self.opt.get('network_t') is None:
            return None
        path = self.opt['path'].get('pretrain_network_t')
        if path is None:
            raise UserError('network_t is set but path.pretrain_network_t is not: a teacher must be trained '
                            'weights, never a random init')
        net_t = build_network(self.opt['network_t']).to(self.device)
        if self.channels_last:
            to_channels_last(net_t)
        self.load_network(net_t, path, True, self.opt['path'].get('param_key_t', 'params'))
        net_t.eval()
        for p in net_t.parameters():
            p.requires_grad_(False)
        return net_t

    @staticmethod
    def _tap(net, names):
        """Record the outputs of the named submodules on each forward; returns the dict they are written to.
        Its keys exist from the start, so that a compiled forward sees the same dict layout on every step."""
        taps = OrderedDict((name, None) for name in names)
        for name in names:
            try:
                module = net.get_submodule(name)
            except AttributeError:
                raise UserError(f"train.ncc_opt.layers: {type(net).__name__} has no module named '{name}'; name "
                                'modules of network_g (e.g. block1 for PFDN)') from None
            module.register_forward_hook(lambda _m, _i, out, name=name: taps.__setitem__(name, out))
        return taps

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        if optim_type not in ('Adam', 'AdamW'):
            return super().get_optimizer(optim_type, params, lr, **kwargs)
        # fused: one kernel updates every parameter (the unfused step is ~10 launches per tensor on a GPU)
        kwargs.setdefault('fused', self.device.type == 'cuda')
        return (torch.optim.AdamW if optim_type == 'AdamW' else torch.optim.Adam)(params, lr, **kwargs)

    def compile_network(self):
        """``train.compile``: compile the training network in place (state-dict keys, DDP and hooks unchanged).
        Validation and saving use uncompiled deployed copies, so the compiled graph only ever sees the training
        shape and compiles once per stage."""
        opts = self.opt['train'].get('compile')
        if not opts:
            return
        kwargs = dict(opts) if isinstance(opts, dict) else {}
        kwargs.setdefault('dynamic', False)
        get_root_logger().info(f'Compiling the training network with torch.compile({kwargs}); the first '
                               'iteration takes longer.')
        self.get_bare_model(self.net_g).compile(**kwargs)
        if getattr(self, 'net_t', None) is not None:
            self.net_t.compile(**kwargs)

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def feed_data(self, data):
        self.lq = self._to_device(data['lq'])
        if 'gt' in data:
            self.gt = self._to_device(data['gt'])
        self._lq_path = data.get('lq_path')

    def _to_device(self, t):
        """uint8 batches (PairedCropDataset) travel as bytes and become float in [0, 1] on the device."""
        t = t.to(self.device, non_blocking=True)
        if not t.is_floating_point():
            t = t.float().div_(255)  # the same values as BasicSR's img / 255. on the host
        if self.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def optimize_parameters(self, current_iter):
        self._current_iter = current_iter
        self.optimizer_g.zero_grad(set_to_none=True)
        with self._autocast():
            self.output = self.net_g(self.lq)
            l_total, loss_dict = self._losses()
        if not self._deferred_checks:
            self._check_loss_now(l_total, loss_dict, current_iter)
        (self.scaler.scale(l_total) if self.scaler else l_total).backward()
        if self.grad_clip_norm:
            if self.scaler:
                self.scaler.unscale_(self.optimizer_g)
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), self.grad_clip_norm)
        self._step(l_total)
        self._loss_dict = OrderedDict((k, v.detach()) for k, v in loss_dict.items())  # reduced only when logged
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _step(self, l_total):
        if self._deferred_checks:
            self._bad_steps += ~torch.isfinite(l_total.detach())
        if self.scaler is not None:
            self.scaler.step(self.optimizer_g)  # skipped on the device when the gradients are not finite
            self.scaler.update()
        elif self._deferred_checks:
            # the fused kernel skips the update where found_inf is set; computed from the (all-reduced) gradients,
            # so every DDP rank skips the same steps
            found_inf = torch.zeros((), device=self.device)
            grads = [p.grad for p in self.net_g.parameters() if p.grad is not None]
            torch._amp_foreach_non_finite_check_and_unscale_(grads, found_inf, torch.ones((), device=self.device))
            self.optimizer_g.found_inf = found_inf
            self.optimizer_g.step()
            del self.optimizer_g.found_inf
        else:
            self.optimizer_g.step()

    def _losses(self):
        l_total = 0
        loss_dict = OrderedDict()
        if self.cri_pix:
            loss_dict['l_pix'] = self.cri_pix(self.output, self.gt)
            l_total = l_total + loss_dict['l_pix']
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(self.output, self.gt)
            for name, value in (('l_percep', l_percep), ('l_style', l_style)):
                if value is not None:
                    loss_dict[name] = value
                    l_total = l_total + value
        if self.cri_ncc is not None:
            if self.net_t is not None:
                with torch.no_grad():
                    self.net_t(self.lq)
                pred = [self._student_taps[n] for n in self.ncc_layers]
                target = [self._teacher_taps[n] for n in self.ncc_layers]
            else:
                pred, target = self.output, self.gt
            loss_dict['l_ncc'] = self.cri_ncc(pred, target)
            l_total = l_total + loss_dict['l_ncc']
        return l_total, loss_dict

    def _check_loss_now(self, l_total, loss_dict, current_iter):
        if not torch.isfinite(l_total):
            values = ', '.join(f'{k}={v.item():.4g}' for k, v in loss_dict.items())
            raise TrainingDiverged(
                f'loss is not finite at iteration {current_iter} ({values}); the step was not applied and the last '
                f"saved checkpoint in {self.opt['path'].get('models')} is kept. Lower the learning rate or set "
                'train.grad_clip_norm, then resume from that checkpoint')

    def check_finite(self, current_iter):
        """Deferred mode: raise if any step since the last check had a non-finite loss (those steps were skipped,
        so the weights and every saved checkpoint are untouched). One host sync, at log/save/validation time."""
        if not getattr(self, '_deferred_checks', False):
            return
        bad = int(self._bad_steps.item())
        if bad:
            raise TrainingDiverged(
                f'loss was not finite in {bad} step(s) between iterations {self._checked_iter} and {current_iter}; '
                f"those steps were skipped and the last saved checkpoint in {self.opt['path'].get('models')} is "
                'kept. Lower the learning rate or set train.grad_clip_norm, then resume from that checkpoint')
        self._checked_iter = current_iter

    def get_current_log(self):
        self.check_finite(self._current_iter)
        return self.reduce_loss_dict(self._loss_dict)

    @torch.no_grad()
    def model_ema(self, decay=0.999):
        # one multi-tensor lerp instead of BasicSR's two kernels per parameter: ema += (1 - decay) (net - ema)
        net_g = self.get_bare_model(self.net_g)
        torch._foreach_lerp_(list(self.net_g_ema.parameters()), list(net_g.parameters()), 1 - decay)

    # ------------------------------------------------------ validation, saving
    def reparameterizable(self):
        """Whether network_g can be converted to a deployed form (PFDN can; BasicSR's MSRResNet, EDSR, ... cannot:
        they train and validate as they are, and no net_g_deploy_*.pth is written for them)."""
        return hasattr(self.get_bare_model(self.net_g), 'reparameterize')

    def deployed_network(self):
        """A deployed-form copy of the network validation and saving use (EMA weights when EMA is on), without the
        training network's compiled code or hooks; a network that cannot reparameterize is copied as it is."""
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.get_bare_model(self.net_g)
        return reparameterized(net) if self.reparameterizable() else detached_copy(net)

    def validation_network(self):
        """What validation and testing run: the deployed network on ``val.backend`` (auto: the fastest for the
        device; torch: the plain eager reference) in ``val.dtype`` (fp32 default); a runtime or precision that is
        missing falls back with a logged note."""
        from ..backends import make_runner

        val_opt = self.opt.get('val') or {}
        return make_runner(self.deployed_network(), val_opt.get('backend', 'auto'), self.device,
                           val_opt.get('dtype', 'fp32'), warn=get_root_logger().warning)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        if self.is_train:
            self.check_finite(current_iter)
        self._val_net = self.validation_network()
        self._val_dataset = dataloader.dataset.opt['name']
        try:
            super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        finally:
            del self._val_net

    def test(self):
        runner = getattr(self, '_val_net', None) or self.validation_network()
        with torch.no_grad():
            self.output = runner(self.lq).float()
        if not torch.isfinite(self.output).all():  # never score or save a black image
            name = os.path.basename(self._lq_path[0]) if self._lq_path else 'an image'
            raise (TrainingDiverged if self.is_train else UserError)(
                f'the network produced NaN or Inf values on {name}; its weights are not usable'
                + (' (training diverged; resume from an earlier checkpoint with a lower learning rate)'
                   if self.is_train else ''))
        if (self.opt.get('val') or {}).get('save_comparison') and hasattr(self, 'gt') and self._lq_path:
            self._save_comparison()

    @master_only
    def _save_comparison(self):
        """HR | bicubic | PFDN crops of the current image (``val.save_comparison: true``)."""
        from ..images import to_image, write_image
        from ..visualize import comparison_strip

        name = os.path.splitext(os.path.basename(self._lq_path[0]))[0]
        strip = comparison_strip(to_image(self.gt), to_image(self.lq), to_image(self.output), self.opt['scale'])
        folder = os.path.join(self.opt['path']['visualization'], getattr(self, '_val_dataset', 'val'))
        os.makedirs(folder, exist_ok=True)
        write_image(os.path.join(folder, f'{name}_HR_bicubic_PFDN.png'), strip)

    def save(self, epoch, current_iter):
        self.check_finite(current_iter)
        super().save(epoch, current_iter)
        self._save_deployed(current_iter)

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        """BasicSR's network save (``{param_key: state_dict}`` per net, no ``module.`` prefixes), written atomically;
        a failure is an error, where BasicSR logs a warning and goes on without the file."""
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        save = {key: {(k[7:] if k.startswith('module.') else k): v.detach().cpu()
                      for k, v in self.get_bare_model(n).state_dict().items()} for n, key in zip(nets, keys)}
        label = 'latest' if current_iter == -1 else current_iter
        save_torch(save, os.path.join(self.opt['path']['models'], f'{net_label}_{label}.pth'))

    @master_only
    def save_training_state(self, epoch, current_iter):
        """BasicSR's training state, plus the fp16 gradient scaler's."""
        if current_iter == -1:
            return
        state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers]}
        if self.scaler is not None:
            state['scaler'] = self.scaler.state_dict()
        save_torch(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        if self.scaler is not None and 'scaler' in resume_state:
            self.scaler.load_state_dict(resume_state['scaler'])

    @master_only
    def _save_deployed(self, current_iter):
        if not self.reparameterizable():
            return
        label = 'latest' if current_iter == -1 else current_iter
        sd = {k: v.detach().cpu() for k, v in self.deployed_network().state_dict().items()}
        save_torch(sd, os.path.join(self.opt['path']['models'], f'net_g_deploy_{label}.pth'))


def to_channels_last(net):
    """NHWC weights everywhere, online RRRB branches and their identity constants included: their kernel
    recomposition then runs as plain matmuls and yields the NHWC kernel its conv wants (see ``fuse_rrrb``)."""
    return net.to(memory_format=torch.channels_last)
