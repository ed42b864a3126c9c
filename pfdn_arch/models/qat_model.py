"""PFDNQATModel: quantization-aware fine-tuning of the deployed PFDN as a BasicSR stage (``options/qat_pfdn_x4.yml``,
``basicsr train``), for int8 that loses less than post-training quantization (docs/int8.md).

The stage starts from deployed weights (the released file, or a schedule's ``net_g_deploy_latest.pth``), quantizes
them as ``basicsr export --int8`` does (``deploy/export/int8/qat.py``: the same ops in float, ranges from histograms of
crops of the training set) and trains the fake-quantized network, weights and quantizer ranges, with the stage's
pixel loss towards the float network's results on the same crops (distillation) or the HR crops
(``train.qat.target``). Validation scores the fake-quantized network (int8 simulated in float). Every save writes:

- ``net_g_<iter>.pth``: ``params`` (the float weights, released layout) plus ``int8`` (the quantizers): what
  ``basicsr export --int8 --weights`` turns into the OpenVINO IR and the QDQ ONNX, and what a resume restores exactly;
- ``net_g_deploy_<iter>.pth``: the float weights alone, as every stage writes them.

Everything else is PFDNModel's (safe loading, uint8 batches, the train step, atomic saves, DDP).
"""
from __future__ import annotations

import copy
import os
from typing import Any, List, Union

import torch
from torch import nn

from basicsr.data import build_dataset
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only

from ..archs import spec_for
from ..deploy.export.int8.ptq import calibration_crops, check_psnr
from ..deploy.export.int8.qat import KEY, fake_quantized, float_state_dict, quantizer_state, restored
from ..deploy.export.int8.record import state_record
from ..deploy.runtime.base import Runner
from ..deploy.runtime.torch_runner import TorchRunner
from ..errors import NotInstalled, OptionsError, installed
from ..files.atomic import save_torch
from ..files.checkpoints import build_from_checkpoint, qat_state
from .pfdn_model import PFDNModel
from .train_step import AMP_OFF, autocast_dtype


# ``train.qat.target``: what the int8 network is trained towards; the first is the default (the option checks read
# these values from here)
QAT_TARGETS = ('fp32', 'hr')


class PFDNQATModel(PFDNModel):
    """Quantization-aware fine-tuning of a deployed PFDN. Options beyond PFDNModel's:

    train.qat.calibration_crops (int): training-set crops the quantizer ranges start from. Default: 64.
    train.qat.target (str): what the int8 network is trained towards: ``fp32`` (the float network it started
        from, on the same LR crops: distillation, since int8's job is to match fp32) or ``hr`` (the HR crops, as
        the stages train). Default: fp32.
    """

    # made by _quantize (the fake-quantized network and how it was made; a deployed PFDN, the layout the float
    # weights are saved in) and by init_training_settings (the float network distillation targets come from)
    qnet: Any
    _record: Any
    _plain: Any
    _float_target: Any

    def __init__(self, opt: dict):
        self.check_options(opt, opt['is_train'])
        self.qnet = self._record = None  # the fake-quantized network and how it was made, once made
        self._plain = None  # a deployed PFDN: the layout the float weights are saved in
        self._float_target = None  # the float network distillation targets come from
        super().__init__(opt)
        if not self.is_train:
            self._quantize()

    @staticmethod
    def check_options(opt: dict, is_train: bool) -> None:
        """What quantization-aware fine-tuning needs (the option checks call this before anything is written)."""
        net = opt.get('network_g') or {}
        if net.get('type') != 'PFDN' or not net.get('deploy'):
            raise OptionsError('quantization-aware fine-tuning trains the deployed PFDN: set network_g type: PFDN and '
                               'deploy: true', 'network_g.deploy')
        if not opt['path'].get('pretrain_network_g'):
            raise OptionsError('quantization-aware fine-tuning starts from trained weights (the released file or a '
                               "stage's net_g_deploy_latest.pth): set it", 'path.pretrain_network_g')
        if not installed('nncf'):
            raise NotInstalled('nncf', 'quantization-aware fine-tuning', 'int8')
        train = opt.get('train') or {}
        target = (train.get('qat') or {}).get('target', QAT_TARGETS[0])
        if target not in QAT_TARGETS:
            raise OptionsError(f"must be fp32 (distillation from the float network) or hr, got {target!r}",
                               'train.qat.target')
        used = {'ema_decay': train.get('ema_decay') not in (None, 0), 'compile': bool(train.get('compile')),
                'amp': autocast_dtype(train.get('amp')) is not None, 'ncc_opt': bool(train.get('ncc_opt'))}
        for key, off in (('ema_decay', 0), ('amp', AMP_OFF), ('compile', False), ('ncc_opt', None)):
            if is_train and used[key]:
                raise OptionsError(f'quantization-aware fine-tuning runs without train.{key} (int8 is simulated '
                                   f'in fp32 on the network as it is): set it to {off}', f'train.{key}')

    # ------------------------------------------------------------------------------------------- networks
    def model_to_device(self, net: nn.Module) -> nn.Module:
        # DDP wraps the fake-quantized network once it exists, never the float one it is made from
        if self.qnet is None:
            return net.to(self.device)
        return super().model_to_device(net)

    def init_training_settings(self) -> None:
        self._quantize()
        if (self.opt['train'].get('qat') or {}).get('target', QAT_TARGETS[0]) == 'fp32':
            self._float_target = self._float_teacher().to(self.device).eval().requires_grad_(False)
            get_root_logger().info('Targets: the float network\'s results on the same LR crops (distillation; '
                                   'train.qat.target: fp32).')
        super().init_training_settings()  # optimizers over the fake-quantized network's weights and ranges

    def _float_teacher(self):
        """The float network the fine-tune started from: the starting weights, or on a resume the weights its
        record names (the fine-tuned float weights, with a warning, where that file is gone)."""
        teacher = copy.deepcopy(self._plain)
        if qat_state(self.opt['path']['pretrain_network_g']) is not None:
            start = (self._record.get('reference') or {}).get('weights')
            if start and os.path.isfile(start):
                teacher.load_state_dict(build_from_checkpoint(start)[0].state_dict())
            else:
                get_root_logger().warning(f'The weights this fine-tune started from ({start}) are not there; '
                                          'distilling from the checkpoint\'s own float weights instead.')
        return teacher

    def optimize_parameters(self, current_iter: int) -> None:
        if self._float_target is not None:  # distillation: the float network's result on the same crops is the target
            with torch.no_grad():
                self.gt = self._float_target(self.lq)
        super().optimize_parameters(current_iter)

    def _quantize(self):
        """net_g becomes the fake-quantized network: the quantizers a QAT checkpoint holds (a resume, or a test of
        a QAT save), else fresh ones calibrated on training crops (on the built-in photos when testing)."""
        logger = get_root_logger()
        net = self.get_bare_model(self.net_g).eval()
        self._plain = copy.deepcopy(net).cpu()
        path = self.opt['path']['pretrain_network_g']
        state = qat_state(path)
        if state is not None:
            self.qnet = restored(net, state, path)
            self._record = state_record(state)
            logger.info(f'Restored the int8 quantizers of {path}.')
        else:
            crops, source = self._calibration_crops()
            self.qnet = fake_quantized(net, crops)
            reference = {'weights': str(path), 'fp32_check_psnr': round(self._check_psnr(net), 4)}
            start = self._check_psnr(self.qnet) - reference['fp32_check_psnr']
            self._record = {'calibration': {'source': source, 'crops': len(crops)},
                            'fine_tuning': {'from': str(path), 'start_loss_db': round(start, 4)},
                            'reference': reference}
            logger.info(f'Quantized {type(net).__name__} for quantization-aware fine-tuning: ranges calibrated on '
                        f'{len(crops)} crops of {source}; int8 (simulated) before fine-tuning: {start:+.3f} dB '
                        'against fp32 on the check photos.')
        self.net_g = self.model_to_device(self.qnet)

    def _calibration_crops(self):
        if not self.is_train:
            return calibration_crops(scale=self.opt['scale'])
        count = int(((self.opt['train'].get('qat') or {}).get('calibration_crops')) or 64)
        ds_opt = dict(self.opt['datasets']['train'])
        dataset = build_dataset(ds_opt)
        crops = []
        for i in range(count):  # spread over the set; each item is a random crop
            lq = dataset[i * len(dataset) // count % len(dataset)]['lq']
            crops.append((lq.float() / 255 if not lq.is_floating_point() else lq)[None].to(self.device))
        return crops, f"the training set {ds_opt.get('name')}"

    def _check_psnr(self, net):
        """PSNR on the int8 check photos (``int8.ptq.check_psnr``): the starting weights' fp32 score is what an
        export of this stage reports its loss against (int8's loss, not the fine-tuned float weights')."""
        with torch.no_grad():
            return check_psnr(lambda x: net(torch.from_numpy(x).to(self.device)).cpu().numpy(), self.opt['scale'])

    def setup_optimizers(self) -> None:
        """SRModel's, without a warning for each of NNCF's fixed quantizer settings (parameters without grad)."""
        train_opt = self.opt['train']
        params = [v for v in self.net_g.parameters() if v.requires_grad]
        optim_type = train_opt['optim_g'].pop('type')
        self.optimizer_g = self.get_optimizer(optim_type, params, **train_opt['optim_g'])
        self.optimizers.append(self.optimizer_g)

    def deployed_network(self) -> nn.Module:
        """The float weights in a deployed PFDN (what ``net_g_deploy_*.pth`` holds)."""
        net = copy.deepcopy(self._plain)
        net.load_state_dict(float_state_dict(self.qnet, spec_for(self._plain)))
        return net

    # ----------------------------------------------------------------------------------------- validation
    def validation_network(self) -> Runner:
        """Validation scores the fake-quantized network (int8 simulated in float) in eager PyTorch."""
        if self._runner is None:
            self._runner = TorchRunner(self.qnet, self.device, 'fp32', torch.get_num_threads())
            get_root_logger().info('Validation runs the fake-quantized network (int8 simulated in float) on torch.')
        elif self.is_train and self._runner_iter != self._current_iter:
            self._runner.refresh(self.qnet)
        self._runner_iter = self._current_iter
        return self._runner

    # ---------------------------------------------------------------------------------------------- saving
    @master_only
    def save_network(self, net: Union[nn.Module, List[nn.Module]], net_label: str, current_iter: int,
                     param_key: Union[str, List[str]] = 'params') -> None:
        """``{'params': float weights (released layout), 'int8': quantizers}``, atomically."""
        if net_label != 'net_g':
            return super().save_network(net, net_label, current_iter, param_key)
        record = dict(self._record)
        record['fine_tuning'] = {**record.get('fine_tuning', {}), 'experiment': self.opt['name'],
                                 'iterations': self._current_iter if current_iter == -1 else current_iter,
                                 'data': self.opt['datasets']['train'].get('name')}
        label = 'latest' if current_iter == -1 else current_iter
        save_torch({'params': float_state_dict(self.qnet, spec_for(self._plain)),
                    KEY: quantizer_state(self.qnet, record)},
                   os.path.join(self.opt['path']['models'], f'{net_label}_{label}.pth'))
