"""One run's options, checked before anything is written: overrides as BasicSR reads them, every check of
``checks/`` called directly and through the command line, the shipped ymls on the machine they run on. Each
case asserts one error line naming the key, or the run that follows."""
import copy
import os

import cv2
import pytest
import torch
import yaml

from conftest import cli, need_shared, one_error, ROOT, snapshot, tiny_options, train_set, train_yml, val_set, write_yml
from pfdn_arch import PFDN
from pfdn_arch.checks import preflight
from pfdn_arch.checks.options import read_yml, RunOptions
from pfdn_arch.checks.overrides import kind_of, override_value, typed_value
from pfdn_arch.errors import OptionsError
from pfdn_arch.models import PFDNModel


SHIPPED_TRAIN = sorted(f for f in os.listdir(os.path.join(ROOT, 'options'))
                       if f.startswith(('train_', 'finetune_', 'qat_')))


SHIPPED_TEST = sorted(f for f in os.listdir(os.path.join(ROOT, 'options')) if f.startswith('test_'))


@pytest.mark.parametrize('text, value', [('5e3', 5000), ('-1', -1), ('1e-4', 1e-4), ('~', None), ('None', None),
                                         ('TRUE', True), ('false', False), ('[1, 2]', [1, 2]), ('0', 0),
                                         ('2.5', 2.5), ('!!float 5e3', 5000.0), ('auto', 'auto'), ('a=b', 'a=b')])
def test_override_values_mean_what_basicsr_reads(text, value):
    from pfdn_arch.checks.overrides import basicsr_value
    got = basicsr_value(text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize('yml', SHIPPED_TRAIN + SHIPPED_TEST)
def test_every_shipped_yml_takes_the_usual_cpu_overrides(yml):
    overrides = ['num_gpu=0', 'manual_seed=~', 'val=~'] + (['datasets:train:num_worker_per_gpu=0'] if 'train' in
                                                           read_yml(os.path.join(ROOT, 'options', yml))['datasets']
                                                           else [])
    run = RunOptions(os.path.join(ROOT, 'options', yml), not yml.startswith('test_'), overrides)
    assert run.opt['num_gpu'] == 0 and type(run.opt['num_gpu']) is int
    assert run.opt['manual_seed'] is None and run.opt['val'] is None
    opt, _ = run.to_basicsr('/tmp')
    assert isinstance(opt['manual_seed'], int) and opt['num_gpu'] == 0


@pytest.mark.parametrize('entry, named', [
    ('num_gpu=banana', 'num_gpu takes a whole number >= 0 or auto'), ('num_gpu=-1', 'num_gpu takes'),
    ('manual_seed=abc', 'manual_seed takes'), ('train:amp=fp8', 'train.amp takes none or fp32 or bf16 or fp16'),
    ('val:val_freq=0', 'val.val_freq takes a whole number >= 1'), ('datasets:train:prefetch_mode=gpu', 'prefetch_mode'),
    ('train:ema_decay=1.5', 'train.ema_decay takes a number in [0, 1)'), ('logger:use_tb_logger=yes', 'true or false'),
    ('train:scheduler:milestones=[a]', 'not a list'), ('train:optim_g:betas=[0.9, 2]', 'train.optim_g.betas takes'),
])
def test_a_wrong_override_value_is_one_line_naming_the_key(photos, tmp_path, capsys, monkeypatch, entry, named):
    monkeypatch.chdir(tmp_path)
    yml = write_yml(tiny_options('bad', datasets={'train': train_set(photos)}, train={'amp': 'none'},
                                 val={'val_freq': 5, 'save_img': False}), tmp_path)
    code, _, err = cli(['train', '-opt', yml, '--force_yml', entry], capsys)
    one_error(code, err, named)
    assert not (tmp_path / 'experiments').exists()


def test_a_wrong_value_in_the_yml_itself_is_one_line(photos, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yml = write_yml(tiny_options('bad', datasets={'train': train_set(photos)}, num_gpu='banana'), tmp_path)
    one_error(*cli(['train', '-opt', yml], capsys)[::2], 'num_gpu takes a whole number >= 0 or auto', "'banana'")


def test_a_logger_whose_package_is_missing_is_one_line_before_the_folder(trained, capsys, monkeypatch):
    import importlib.util
    root, yml = trained
    monkeypatch.chdir(root)
    before = snapshot(root / 'experiments' / 'exp')
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'tensorboard' else real(name, *a))
    code, _, err = cli(['train', '-opt', yml, '--force_yml', 'logger:use_tb_logger=true'], capsys)
    one_error(code, err, 'logger.use_tb_logger', 'pip install')
    assert snapshot(root / 'experiments' / 'exp') == before


def test_an_edsr_checkpoint_into_test_is_one_line_and_no_results_folder(photos, tmp_path, capsys, monkeypatch):
    from basicsr.archs.edsr_arch import EDSR

    monkeypatch.chdir(tmp_path)
    torch.save({'params': EDSR(3, 3, num_feat=8, num_block=1).state_dict()}, tmp_path / 'edsr.pth')
    opt = {'name': 't', 'model_type': 'PFDNModel', 'scale': 4, 'num_gpu': 0,
           'datasets': {'test_1': val_set(photos)}, 'network_g': {'type': 'PFDN', 'deploy': True},
           'path': {'pretrain_network_g': str(tmp_path / 'edsr.pth')}, 'val': {'save_img': False}}
    code, _, err = cli(['test', '-opt', write_yml(opt, tmp_path)], capsys)
    one_error(code, err, 'edsr.pth', 'does not fit this PFDN')
    assert len(err) == 1 and not (tmp_path / 'results' / 't').exists()


def test_images_smaller_than_the_crop_are_left_out_with_a_note(photos, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # chelsea is 451x300: its LQ (75 px tall) cannot give a 96-px LQ crop; the two others can
    yml = write_yml(tiny_options('crop', datasets={'train': train_set(photos, gt_size=384)}, train={'total_iter': 1}),
                    tmp_path)
    code, _, err = cli(['train', '-opt', yml], capsys)
    assert code == 0, err
    assert any('1 of 3 images are smaller than the crop' in line for line in err)


def test_the_gpu_step_settings_are_off_on_a_cpu_unless_forced():
    train = os.path.join(ROOT, 'options', 'train_pfdn_x4.yml')
    run = RunOptions(train, True, ['num_gpu=0'])
    notes = run.cpu_adjustments()
    if torch.cuda.is_available():
        assert run.opt['train']['compile'] is True and run.opt['train']['amp'] == 'bf16'
        return
    assert run.opt['train']['compile'] is False and run.opt['train']['amp'] == 'none'
    assert sum('turned off' in n for n in notes) == 2
    forced = RunOptions(train, True, ['train:compile=true', 'train:amp=bf16'])
    forced.cpu_adjustments()
    assert forced.opt['train']['compile'] is True and forced.opt['train']['amp'] == 'bf16'


def test_the_test_yml_scores_the_sets_that_exist_and_says_which_it_left_out(weights, set5_hr, tmp_path, monkeypatch,
                                                                            capsys):
    from pfdn_arch.data.preparation import prepare_benchmark
    monkeypatch.chdir(tmp_path)
    os.makedirs('hr')
    for name in ('baby.png', 'bird.png'):
        cv2.imwrite(f'hr/{name}', cv2.imread(os.path.join(set5_hr, name)))
    code, _, err = cli(['test', '-opt', 'options/test_pfdn_x4.yml', '--force_yml', f'path:pretrain_network_g={weights}'],
                       capsys)
    one_error(code, err, 'inputs are not there', 'basicsr prepare benchmark --hr <folder of Set5\'s HR images> --name '
              'Set5', 'basicsr prepare benchmark --hr <folder of Urban100\'s HR images> --name Urban100')
    assert not os.path.exists('results')
    prepare_benchmark('hr', 'Set5')
    run = RunOptions('options/test_pfdn_x4.yml', False, [f'path:pretrain_network_g={weights}']).check()
    assert list(run.opt['datasets']) == ['test_1']
    assert any('datasets.test_2 (Urban100) is left out' in n for n in run.cpu_adjustments())


def test_a_skip_says_in_one_short_line_what_is_missing_and_what_brings_it(monkeypatch):
    import conftest
    for path, brings in ((conftest.WEIGHTS, 'curl'), (conftest.SET5_HR, 'basicsr prepare benchmark'),
                         (conftest.TRAIN_HR, 'PFDN_SHARED')):
        with monkeypatch.context() as m, pytest.raises(pytest.skip.Exception) as skipped:
            m.delenv('CI', raising=False)
            m.setattr(os.path, 'exists', lambda p: False)
            need_shared(path)
        line = f'SKIPPED [1] tests/test_deploy.py:1234: {skipped.value}'  # as pytest -rs prints it
        assert brings in line and len(line) < 160 and '\n' not in line, line


def test_scheduler_lists_that_do_not_agree_are_one_line(photos, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yml = write_yml(tiny_options('cos', datasets={'train': train_set(photos)},
                                 train={'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [10, 20],
                                                      'restart_weights': [1]}}), tmp_path)
    one_error(*cli(['train', '-opt', yml], capsys)[::2], 'train.scheduler', 'periods has 2 entries and '
              'restart_weights 1')
    assert not (tmp_path / 'experiments').exists()


def test_another_arch_on_the_shipped_test_yml_names_the_key_it_does_not_take():
    from pfdn_arch.errors import OptionsError
    from pfdn_arch.checks.preflight import check_networks
    run = RunOptions(os.path.join(ROOT, 'options', 'test_pfdn_x4.yml'), False, ['network_g:type=EDSR'])
    with pytest.raises(OptionsError, match='EDSR takes no argument deploy') as err:
        check_networks(run.opt)
    assert err.value.path == 'network_g.deploy'


@pytest.mark.parametrize('entry, value', [('train:optim_g:lr=1e-4', 1e-4), ('train:warmup_iter=-1', -1),
                                          ('train:total_iter=5e3', 5000), ('train:ema_decay=0.999', 0.999)])
def test_overrides_take_the_yml_s_types(photos, tmp_path, entry, value):
    from pfdn_arch.checks.options import RunOptions
    yml = write_yml(tiny_options('typed', datasets={'train': train_set(photos)}), tmp_path)
    run = RunOptions(yml, True, [entry])
    node = run.opt
    *keys, leaf = entry.split('=')[0].split(':')
    for key in keys:
        node = node[key]
    assert node[leaf] == value and type(node[leaf]) is type(value)


def test_an_override_value_may_hold_an_equals_sign(photos, tmp_path):
    from pfdn_arch.checks.options import RunOptions
    yml = write_yml(tiny_options('eq', datasets={'train': train_set(photos)}), tmp_path)
    run = RunOptions(yml, True, ['path:pretrain_network_g=/data/run=3/net.pth'])
    assert run.opt['path']['pretrain_network_g'] == '/data/run=3/net.pth'


@pytest.mark.parametrize('override, named', [
    ('train:total_iter=-5', 'train.total_iter'), ('train:total_iter=0', 'train.total_iter'),
    ('train:total_iter=abc', 'total_iter=abc'), ('datasets:train:gt_size=62', 'datasets.train.gt_size'),
    ('datasets:train:gt_size=63', 'datasets.train.gt_size'), ('datasets:train:gt_size=32', 'datasets.train.gt_size'),
    ('train:pixel_opt:type=FooLoss', 'FooLoss'), ('datasets:train:batch_size_per_gpu=400', 'datasets.train'),
])
def test_overrides_that_cannot_work_are_one_line_before_anything_is_written(photos, tmp_path, capsys, monkeypatch,
                                                                             override, named):
    monkeypatch.chdir(tmp_path)
    yml = write_yml(tiny_options('bad', datasets={'train': dict(train_set(photos), dataset_enlarge_ratio=1)}),
                    tmp_path)
    code, _, err = cli(['train', '-opt', yml, '--force_yml', override], capsys)
    one_error(code, err, named)
    assert not (tmp_path / 'experiments').exists()


def test_no_workers_with_persistent_workers_is_a_note_and_trains(photos, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yml = write_yml(tiny_options('persist', train={'total_iter': 2},
                                 datasets={'train': train_set(photos, persistent_workers=True)},
                                 logger={'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False}), tmp_path)
    code, _, err = cli(['train', '-opt', yml, '--force_yml', 'datasets:train:num_worker_per_gpu=0'], capsys)
    assert code == 0, err[-5:]
    assert any('persistent_workers' in line and line.startswith('note: ') for line in err)


def test_test_lr_images_that_are_not_the_hr_downscaled_are_refused(photos, weights, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    short = tmp_path / 'short'
    short.mkdir()
    for name in ('astronaut.png', 'chelsea.png', 'coffee.png'):
        lr = cv2.imread(str(photos['lr'] / name))
        cv2.imwrite(str(short / name), lr[:-3])  # three rows short
    opt = dict(tiny_options('short'), datasets={'test_1': dict(val_set(photos), dataroot_lq=str(short))},
               network_g={'type': 'PFDN', 'deploy': True}, path={'pretrain_network_g': str(weights)},
               val={'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4}}})
    code, _, err = cli(['test', '-opt', write_yml(opt, tmp_path)], capsys)
    one_error(code, err, 'datasets.test_1', 'astronaut.png')
    assert not (tmp_path / 'results').exists()


def test_malformed_ymls_each_give_one_error_line(weights, data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = yaml.safe_load(open(train_yml(data, tmp_path, 'good')))
    test_opt = yaml.safe_load(open(os.path.join(ROOT, 'options', 'test_pfdn_x4.yml')))
    small = tmp_path / 'small_lr'
    small.mkdir()
    for name in ('astronaut.png', 'chelsea.png', 'coffee.png'):  # LR one pixel too large for their GT
        lr = cv2.imread(str(data['lr'] / name))
        cv2.imwrite(str(small / name), cv2.resize(lr, (lr.shape[1] + 1, lr.shape[0])))

    def variant(name, change, base=good):
        opt = yaml.safe_load(yaml.safe_dump(base))
        change(opt)
        return write_yml(dict(opt, name=name), tmp_path)

    no_net = variant('no_net', lambda o: o.pop('network_g'))
    no_path = variant('no_path', lambda o: o.pop('path'))
    as_list = variant('as_list', lambda o: o.update(datasets=[o['datasets']['train']]))
    deployed = variant('deployed', lambda o: o.update(network_g={'type': 'PFDN'}, path={
        'pretrain_network_g': str(weights), 'strict_load_g': True, 'resume_state': None}))
    mismatch = variant('mismatch', lambda o: o['datasets'].update(val={
        'name': 'val', 'type': 'PairedImageDataset', 'dataroot_gt': str(data['hr']), 'dataroot_lq': str(small),
        'io_backend': {'type': 'disk'}}) or o.update(val={'val_freq': 2, 'save_img': False, 'metrics': {}}))
    test_yml = variant('test', lambda o: o['path'].update(pretrain_network_g=str(weights)), base=test_opt)
    cases = [
        (['train', '-opt', no_net], 'has no network_g: a BasicSR training options file needs'),
        (['train', '-opt', no_path], 'has no path: a BasicSR training options file needs'),
        (['train', '-opt', as_list], 'datasets must be a mapping of names to settings, not a list'),
        (['train', '-opt', good_path(tmp_path), '--force_yml', 'train:total_iterr=2'],
         "--force_yml: train:total_iterr=2: the options have no 'total_iterr' in train (did you mean 'total_iter'?)"),
        (['test', '-opt', test_yml, '--force_yml', 'datasets:test_2=~'],
         '--force_yml: datasets:test_2=~: a dataset cannot be removed'),
        (['train', '-opt', mismatch], 'datasets.val: astronaut.png is 129x128, x4 = 516x512, but its GT is 512x512'),
        (['train', '-opt', deployed], 'is in the deployed (fused) form and cannot feed a training-form PFDN'),
    ]
    for args, message in cases:
        code, _, err = cli(args, capsys)
        assert code == 2 and err[-1].startswith('error: ') and message in err[-1], (args, err)
        assert not any(line.startswith('Traceback') for line in err)
    assert not (tmp_path / 'experiments' / 'mismatch').exists()  # refused before BasicSR wrote anything


def good_path(tmp_path):
    return tmp_path / 'good.yml'


def test_schedule_without_its_data_says_so_once_before_starting(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(['schedule'], capsys)
    assert code == 2 and len(err) == 1
    assert 'inputs are not there: datasets/DF2K/DF2K_HR.lmdb' in err[0]
    assert 'basicsr prepare df2k --hr <folders of HR images>' in err[0]
    assert not (tmp_path / 'experiments').exists()


@pytest.mark.parametrize('text, current, value', [
    ('3', 1, 3), ('0.5', 0, 0.5), ('2', 0.1, 2.0), ('5e3', 100, 5000),  # a number stays a number; 0 widens
    ('false', True, False), ('[1, 2]', [4], [1, 2]), ('~', [4], None),
    ('007', 'abc', '007'), (' a b ', 'x', 'a b'), ('~', 'x', None),  # a string is the text as typed
    ('12', None, 12), ('true', None, True),  # an empty yml key: as BasicSR reads it
    ('~', {'a': 1}, None),  # a section cleared
])
def test_a_key_the_table_does_not_know_takes_the_type_of_the_yml_value(text, current, value):
    got = typed_value(text, current)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize('text, current, says', [
    ('abc', 1, 'needs a number'), ('1', True, 'needs true or false'), ('3', [1], 'needs a list'),
    ('1', {'a': 1}, 'that is a section'),
])
def test_a_value_of_another_type_than_the_yml_value_is_refused(text, current, says):
    with pytest.raises(OptionsError) as err:
        typed_value(text, current, 'force_yml')
    assert err.value.path == 'force_yml' and says in err.value.reason and repr(current) in err.value.reason


@pytest.mark.parametrize('keys, text, value', [
    ('train:total_iter', '5e3', 5000), ('num_gpu', 'auto', 'auto'), ('num_gpu', '0', 0),
    ('name', '2024', '2024'),  # a name typed as digits is the name, not a number
    ('datasets:train:use_hflip', 'false', False), ('train:scheduler:milestones', '[10, 20]', [10, 20]),
    ('val:dtype', 'bf16', 'bf16'), ('path:pretrain_network_g', '~', None),
])
def test_a_key_the_table_knows_takes_its_kind(keys, text, value):
    assert kind_of(keys) is not None
    assert override_value(keys, text, None, 'force_yml') == value


@pytest.mark.parametrize('keys, text', [
    ('train:total_iter', '0'), ('train:total_iter', '1.5'), ('num_gpu', 'many'), ('val:dtype', 'int4'),
    ('train:ema_decay', '1'), ('datasets:train:use_hflip', 'yes please'), ('scale', '9'),
])
def test_a_value_the_table_refuses_is_one_error_naming_the_key(keys, text):
    with pytest.raises(OptionsError) as err:
        override_value(keys, text, None, 'force_yml')
    assert err.value.path == 'force_yml' and keys.replace(':', '.') in err.value.reason
    assert 'takes' in err.value.reason


def test_keys_outside_the_table_have_no_kind():
    assert kind_of('network_g:num_feat') is None and kind_of('train:pixel_opt:reduction') is None
    assert kind_of('network_g:type') is not None and kind_of('network_t:deploy') is not None


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


@pytest.mark.parametrize('check', [preflight.check_patch_size,
                                   preflight.check_patch_fits_networks, preflight.check_scheduler,
                                   preflight.check_losses, preflight.check_metrics, preflight.check_networks])
def test_good_options_pass_every_check(check):
    check(copy.deepcopy(GOOD))


@pytest.mark.parametrize('where, value', [('train.total_iter', 0), ('train.total_iter', 2.5), ('scale', True),
                                          ('datasets.train.batch_size_per_gpu', 0),
                                          ('datasets.train.num_worker_per_gpu', -1)])
def test_counts_are_whole_numbers(where, value):
    from pfdn_arch.checks.overrides import check_values
    refused(check_values, changed(where, value), 'the.yml', f'{where} takes a whole number', repr(value),
            path='the.yml')


def test_a_patch_is_a_multiple_of_the_scale():
    refused(preflight.check_patch_size, changed('datasets.train.gt_size', 98), 'datasets.train.gt_size',
            'not a multiple of the scale 4', 'use 96 or 100')
    refused(preflight.check_patch_size, changed('datasets.train.gt_size', 3), 'datasets.train.gt_size',
            'not a multiple of the scale 4', 'use 4')


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


def test_a_training_run_names_every_missing_input_with_the_command_that_makes_it(tmp_path, monkeypatch):
    from pfdn_arch.checks.options import RunOptions
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
    from pfdn_arch.checks.options import RunOptions
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
    from pfdn_arch.layout.locations import describe_weights
    from pfdn_arch.checks.options import RunOptions
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


# ------------------------------------------------------------------ one home per fact: each choice against its user
def _runs_basicsr_schedulers(kind):
    """BasicSR's own ``BaseModel.setup_schedulers`` on a stand-in model: NotImplementedError for a type it lacks."""
    import types

    from basicsr.models.base_model import BaseModel
    model = types.SimpleNamespace(opt={'train': {'scheduler': {'type': kind}}}, schedulers=[],
                                  optimizers=[torch.optim.SGD([torch.zeros(1, requires_grad=True)], 0.1)])
    try:
        BaseModel.setup_schedulers(model)
    except TypeError:  # a type it builds, without the arguments this stand-in leaves out
        pass


def _basicsr_prefetch_modes():
    """The prefetch modes BasicSR's ``train_pipeline`` takes, as its own error message lists them."""
    import re

    import basicsr.train
    with open(basicsr.train.__file__) as f:
        found = re.search(r'Supported ones are: ([^.]*)\.', f.read())
    return {w.strip(" '") for w in found[1].split(',')} - {'None'}


def _basicsr_prefetch(value):
    if value not in _basicsr_prefetch_modes():
        raise ValueError(value)


def _parses_num_gpu(value, tmp_path):
    """BasicSR's ``parse_options`` turns num_gpu into a count (``auto``: the GPUs there are); anything else it
    leaves as it was given."""
    from basicsr.utils.options import parse_options
    opt = tiny_options('num_gpu', num_gpu=value, datasets={})
    yml = write_yml(opt, tmp_path)
    argv = os.sys.argv
    os.sys.argv = ['basicsr', '-opt', yml]
    try:
        parsed, _ = parse_options(str(tmp_path), False)
    finally:
        os.sys.argv = argv
    if not isinstance(parsed['num_gpu'], int):
        raise ValueError(value)


def _qat_target(value):
    from pfdn_arch.models.qat_model import PFDNQATModel
    PFDNQATModel.check_options({'network_g': {'type': 'PFDN', 'deploy': True}, 'path': {'pretrain_network_g': 'x'},
                                'train': {'qat': {'target': value}}}, True)


def _users(tmp_path):
    """{key pattern: (the call that reads the key's value, raising where it does not take it; words to try)}."""
    from pfdn_arch.archs import RRRB
    from pfdn_arch.deploy.runtime import choose
    from pfdn_arch.models.train_step import autocast_dtype

    def quiet(line):
        pass
    return {
        'train:amp': (autocast_dtype, ['none', 'fp32', 'bf16', 'fp16', 'float32', 'bfloat16', 'FP16', 'amp', '']),
        'val:backend': (lambda v: choose.resolve(v, 'cpu', 'fp32', quiet),
                        ['auto', 'torch', 'compile', 'openvino', 'onnxruntime', 'ncnn', 'tensorrt', 'Torch']),
        'val:dtype': (lambda v: choose.resolve('torch', 'cpu', v, quiet),
                      ['auto', 'fp32', 'fp16', 'bf16', 'int8', 'float32', 'none']),
        'network_*:rrrb_mode': (lambda v: RRRB(8, mode=v), ['online', 'explicit', 'deploy', 'fused', '']),
        'train:scheduler:type': (_runs_basicsr_schedulers, ['MultiStepLR', 'MultiStepRestartLR',
                                                             'CosineAnnealingRestartLR', 'CosineAnnealingLR',
                                                             'StepLR', 'ExponentialLR']),
        'datasets:*:prefetch_mode': (_basicsr_prefetch, ['cpu', 'cuda', 'gpu', 'none']),
        'num_gpu': (lambda v: _parses_num_gpu(v, tmp_path), ['auto', 'all', 'max']),
        'train:qat:target': (_qat_target, ['fp32', 'hr', 'int8', 'lr', 'gt']),
    }


def _takes(call, value):
    try:
        call(value)
    except (OptionsError, ValueError, NotImplementedError):
        return False
    return True


def test_every_choice_the_checks_offer_is_what_its_user_takes(tmp_path):
    """The option checks read each key's words from the code that uses the key; for each such key, every word tried
    is taken by the checks exactly where the user takes it (``train.amp: fp32`` was refused by the checks while
    training ran it)."""
    from pfdn_arch.checks.overrides import KEYS
    users = _users(tmp_path)
    choices = {pattern: kind for pattern, kind in KEYS if kind.words}
    assert set(choices) == set(users), 'a key with a choice of words needs its user here'
    for pattern, kind in choices.items():
        call, tries = users[pattern]
        for word in set(tries) | set(kind.words):
            assert _takes(kind.accept, word) == _takes(call, word), (pattern, word)


def test_the_choice_test_finds_a_table_that_disagrees(tmp_path, monkeypatch):
    from pfdn_arch.checks import overrides
    monkeypatch.setattr(overrides, 'KEYS', tuple((p, overrides.one_of(['none', 'bf16', 'fp16']))
                                                 if p == 'train:amp' else (p, k) for p, k in overrides.KEYS))
    with pytest.raises(AssertionError, match='train:amp'):
        test_every_choice_the_checks_offer_is_what_its_user_takes(tmp_path)


def test_amp_fp32_trains(photos, tmp_path, capsys, monkeypatch):
    """``--force_yml train:amp=fp32`` passes the checks and trains (it means no autocast)."""
    monkeypatch.chdir(tmp_path)
    yml = train_yml(photos, tmp_path, name='fp32', total=2, amp='bf16')
    code, _, err = cli(['train', '-opt', yml, '--force_yml', 'train:amp=fp32'], capsys)
    assert code == 0, err
    assert (tmp_path / 'experiments' / 'fp32' / 'models' / 'net_g_latest.pth').is_file()
    with open(next((tmp_path / 'experiments' / 'fp32').glob('*.yml'))) as f:
        assert yaml.safe_load(f)['train']['amp'] == 'fp32'


def test_the_checks_fit_a_checkpoint_to_the_networks_structure_alone(photos, tmp_path, monkeypatch):
    """The network BasicSR builds right after the checks is not built by them: they fit the checkpoint to the
    network's structure, made on the meta device, and load nothing into any network; a checkpoint that does not fit
    is still one line naming what."""
    from torch import nn
    from conftest import tiny_checkpoint
    weights = tiny_checkpoint(tmp_path)
    made = []
    real_init = PFDN.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        made.append(next(self.parameters()).device.type)
    monkeypatch.setattr(PFDN, '__init__', init)
    monkeypatch.setattr(nn.Module, 'load_state_dict', lambda *a, **k: pytest.fail('a network was loaded'))
    yml = write_yml(tiny_options('fits', datasets={'train': train_set(photos)}, network_g={'deploy': True}), tmp_path)
    RunOptions(yml, True, [f'path:pretrain_network_g={weights}']).check()
    assert made == ['meta']
    monkeypatch.undo()
    wrong = tmp_path / 'wrong.pth'
    sd = torch.load(weights, weights_only=True)
    torch.save({k: (v[:1] if k == 'conv_last.bias' else v) for k, v in sd.items()}, wrong)
    from pfdn_arch.errors import CheckpointError
    with pytest.raises(CheckpointError, match='conv_last.bias'):
        RunOptions(yml, True, [f'path:pretrain_network_g={wrong}']).check()
