"""The checks before anything is written (``recipe/preflight.py``), one mistake each, called directly on options
as BasicSR parses them: each passes good options and names the key of a bad one in one OptionsError."""
import copy

import pytest
import torch

import pfdn_arch  # noqa: F401 (registers PFDN, PFDNModel, NCCLoss in BasicSR's registries)
from pfdn_arch.archs import PFDN
from pfdn_arch.errors import OptionsError
from pfdn_arch.models import PFDNModel
from pfdn_arch.recipe import preflight

GOOD = {'scale': 4, 'model_type': 'PFDNModel', 'num_gpu': 0,
        'network_g': {'type': 'PFDN', 'num_feat': 16, 'num_block': 1, 'num_partial_feat': 8, 'esa_channels': 8},
        'datasets': {'train': {'gt_size': 96, 'batch_size_per_gpu': 2, 'num_worker_per_gpu': 0}},
        'train': {'total_iter': 10, 'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [5], 'gamma': 0.5},
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'val': {'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4}}},
        'logger': {'use_tb_logger': False}}


def changed(where, value):
    """GOOD with the key path ``where`` ('a.b') set to ``value``."""
    opt = copy.deepcopy(GOOD)
    *path, last = where.split('.')
    node = opt
    for key in path:
        node = node[key]
    node[last] = value
    return opt


def refused(check, opt, where, *says, **kwargs):
    with pytest.raises(OptionsError) as err:
        check(opt, **kwargs)
    assert err.value.path == where, err.value
    assert all(s in err.value.reason for s in says), err.value.reason


@pytest.mark.parametrize('check', [preflight.check_numbers, preflight.check_patch_size,
                                   preflight.check_patch_fits_networks, preflight.check_scheduler,
                                   preflight.check_losses, preflight.check_metrics, preflight.check_networks])
def test_good_options_pass_every_check(check):
    check(copy.deepcopy(GOOD))


@pytest.mark.parametrize('where, value', [('train.total_iter', 0), ('train.total_iter', 2.5), ('scale', True),
                                          ('datasets.train.batch_size_per_gpu', 0),
                                          ('datasets.train.num_worker_per_gpu', -1)])
def test_counts_are_whole_numbers(where, value):
    refused(preflight.check_numbers, changed(where, value), where, 'whole number', repr(value))


def test_a_patch_is_a_multiple_of_the_scale():
    refused(preflight.check_patch_size, changed('datasets.train.gt_size', 98), 'datasets.train.gt_size',
            'not a multiple of the scale 4', 'use 96 or 100')


def test_a_patch_fits_the_network_by_its_spec():
    refused(preflight.check_patch_fits_networks, changed('datasets.train.gt_size', 56), 'datasets.train.gt_size',
            "PFDN's smallest input (15)", 'at least 60')
    other = changed('datasets.train.gt_size', 56)
    other['network_g'] = {'type': 'MSRResNet'}  # no spec: its own needs are its own
    preflight.check_patch_fits_networks(other)


def test_a_network_argument_the_class_lacks_is_named():
    refused(preflight.check_networks, changed('network_g.num_feats', 16), 'network_g.num_feats', 'no argument num_feats',
            'num_feat')


def test_the_scale_and_the_network_agree():
    refused(preflight.check_networks, changed('network_g.upscale', 2), 'scale', 'network_g.upscale sets 2')


def test_a_scheduler_takes_its_own_arguments():
    refused(preflight.check_scheduler, changed('train.scheduler.type', 'StepLR'), 'train.scheduler.type', 'StepLR')
    refused(preflight.check_scheduler, changed('train.scheduler.periods', [5]), 'train.scheduler', 'periods')


def test_an_optimizer_is_one_the_model_builds_with_arguments_torch_takes():
    preflight.check_optimizers(copy.deepcopy(GOOD), PFDNModel)
    refused(preflight.check_optimizers, changed('train.optim_g.type', 'SGD'), 'train.optim_g.type', 'SGD',
            model_cls=PFDNModel)
    refused(preflight.check_optimizers, changed('train.optim_g.beta', 0.9), 'train.optim_g.beta', 'betas',
            model_cls=PFDNModel)


def test_a_loss_and_a_metric_take_their_arguments():
    refused(preflight.check_losses, changed('train.pixel_opt.weight', 1.0), 'train.pixel_opt.weight', 'loss_weight')
    refused(preflight.check_metrics, changed('val.metrics.psnr', {'type': 'calculate_psnr'}), 'val.metrics.psnr',
            'crop_border')


def test_the_launcher_needs_its_environment(monkeypatch):
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(OptionsError) as err:
        preflight.check_launcher('pytorch')
    assert err.value.path == 'launcher' and 'torchrun' in err.value.reason
    preflight.check_launcher('none')


def test_resuming_refuses_a_network_of_the_other_form(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    models = tmp_path / 'experiments' / 'form' / 'models'
    models.mkdir(parents=True)
    net = PFDN(num_feat=16, num_block=1, num_partial_feat=8, esa_channels=8)  # trained in the training form
    torch.save({'params': net.state_dict()}, models / 'net_g_2.pth')
    (tmp_path / 'experiments' / 'form' / 'training_states').mkdir()
    torch.save({'iter': 2}, tmp_path / 'experiments' / 'form' / 'training_states' / '2.state')
    preflight.check_resumable_form(changed('network_g.deploy', False), 'form')
    refused(preflight.check_resumable_form, changed('network_g.deploy', True), 'network_g.deploy',
            'network_g.deploy: false', name='form')


# ------------------------------------------------------------------------- missing inputs, all at once, with the fix
def test_a_training_run_names_every_missing_input_with_the_command_that_makes_it(tmp_path, monkeypatch):
    from pfdn_arch.recipe.options import RunOptions
    monkeypatch.chdir(tmp_path)
    for yml, lmdbs, flags in (('train_pfdn_x4.yml', ('DF2K_HR.lmdb', 'DF2K_LR_bicubic_X4.lmdb'), ''),
                              ('train_pfdn_x2.yml', ('DF2K_HR_mod2.lmdb', 'DF2K_LR_bicubic_X2.lmdb'), ' --scale 2')):
        with pytest.raises(OptionsError) as err:
            RunOptions(f'options/{yml}', True).check()
        reason = err.value.reason
        assert reason.startswith('4 inputs are not there: ')  # the training data and the validation set at once
        assert all(f'datasets/DF2K/{name}' in reason for name in lmdbs)
        assert f'(make them: basicsr prepare df2k --hr <folders of HR images>{flags})' in reason
        assert "basicsr prepare benchmark --hr <folder of Set5's HR images> --name Set5" in reason
    # a folder made since is not named again; the rest still are
    (tmp_path / 'datasets' / 'benchmark' / 'Set5' / 'HR').mkdir(parents=True)
    with pytest.raises(OptionsError) as err:
        RunOptions('options/train_pfdn_x4.yml', True).check()
    assert err.value.reason.startswith('3 inputs are not there') and 'Set5/HR' not in err.value.reason


def test_a_test_run_names_missing_weights_beside_missing_sets(tmp_path, monkeypatch):
    from pfdn_arch.recipe.options import RunOptions
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OptionsError) as err:
        RunOptions('options/test_pfdn_x4.yml', False).check()
    reason = err.value.reason
    assert 'Set5/HR' in reason and 'Urban100/HR' in reason
    assert ('weights/team08_PFDN.pth (download it: mkdir -p weights && curl -L -o weights/team08_PFDN.pth '
            'https://github.com/icandle/PFDN/raw/main/model_zoo/team08_PFDN.pth)') in reason
    with pytest.raises(OptionsError) as err:
        RunOptions('options/test_pfdn_x4.yml', False, ['path:pretrain_network_g=mine.pth']).check()
    assert 'mine.pth (put the checkpoint there, or pass --force_yml path:pretrain_network_g=<checkpoint>)' in \
        err.value.reason


def test_results_are_named_after_the_weights_that_ran(tmp_path, monkeypatch, weights, set5_hr):
    import shutil
    from pfdn_arch.data.preparation import prepare_benchmark
    from pfdn_arch.files.locations import describe_weights
    from pfdn_arch.recipe.options import RunOptions
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'hr').mkdir()
    shutil.copy(f'{set5_hr}/baby.png', tmp_path / 'hr')
    prepare_benchmark('hr', 'Set5')
    shutil.copy(weights, tmp_path / 'copy.pth')  # the released file under another name: still the released weights
    assert RunOptions('options/test_pfdn_x4.yml', False, ['path:pretrain_network_g=copy.pth']).check().name == \
        'PFDN_x4_released'
    assert describe_weights('copy.pth') == 'copy.pth (the released PFDN x4 weights)'
    state = torch.load(weights, weights_only=True)
    torch.save({'params': state}, tmp_path / 'my weights.pth')  # the same tensors, another file
    run = RunOptions('options/test_pfdn_x4.yml', False, ['path:pretrain_network_g=my weights.pth']).check()
    assert run.name == 'PFDN_x4_my_weights'
    assert any('results go to results/PFDN_x4_my_weights/' in note for note in run.notes)
    assert describe_weights('my weights.pth') == 'my weights.pth (not the released file)'
