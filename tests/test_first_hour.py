"""The first hour of a BasicSR user, by class: overrides as BasicSR reads them, every check before the experiment
folder (a failing rerun leaves a trained experiment byte for byte), the shipped ymls on the machine they run on
(CPU step settings, test sets that exist, TensorBoard), x2/x3, derived data that remembers its source, pictures
and films as users bring them. Each row asserts one error line or a correct result."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import pytest
import torch

from conftest import (ENV, ROOT, TINY_NET, cli, need_shared, one_error, run_group, snapshot, tiny_options, train_set,
                      val_set, write_yml)
from pfdn_arch import PFDN
from pfdn_arch.files.samples import sample_image
from pfdn_arch.recipe.options import RunOptions, read_yml

SHIPPED_TRAIN = sorted(f for f in os.listdir(os.path.join(ROOT, 'options'))
                       if f.startswith(('train_', 'finetune_', 'qat_')))
SHIPPED_TEST = sorted(f for f in os.listdir(os.path.join(ROOT, 'options')) if f.startswith('test_'))


def tiny_state(deploy=True, scale=4, seed=0):
    torch.manual_seed(seed)
    net = PFDN(**{k: v for k, v in TINY_NET.items() if k != 'type'}, upscale=scale, deploy=deploy)
    return net.state_dict()


# ------------------------------------------------------------------------------------ overrides, BasicSR's reading
@pytest.mark.parametrize('text, value', [('5e3', 5000), ('-1', -1), ('1e-4', 1e-4), ('~', None), ('None', None),
                                         ('TRUE', True), ('false', False), ('[1, 2]', [1, 2]), ('0', 0),
                                         ('2.5', 2.5), ('!!float 5e3', 5000.0), ('auto', 'auto'), ('a=b', 'a=b')])
def test_override_values_mean_what_basicsr_reads(text, value):
    from pfdn_arch.recipe.overrides import basicsr_value
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
    ('manual_seed=abc', 'manual_seed takes'), ('train:amp=fp8', 'train.amp takes none or bf16 or fp16'),
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


def test_python_m_basicsr_train_runs_a_shipped_yml_with_the_usual_cpu_overrides(photos, tmp_path):
    lq_val = {'datasets:val:dataroot_gt': photos['hr'], 'datasets:val:dataroot_lq': photos['lr']}
    overrides = ['num_gpu=0', 'manual_seed=~', 'datasets:train:num_worker_per_gpu=0', 'train:total_iter=2',
                 f"datasets:train:dataroot_gt={photos['gt']}", f"datasets:train:dataroot_lq={photos['lq']}",
                 'datasets:train:gt_size=64', 'datasets:train:batch_size_per_gpu=2', 'logger:use_tb_logger=false',
                 'logger:save_checkpoint_freq=2', 'val:val_freq=2'] + [f'{k}={v}' for k, v in lq_val.items()]
    proc = run_group([sys.executable, '-m', 'basicsr.train', '-opt', os.path.join(ROOT, 'options',
                                                                                  'train_pfdn_x4.yml'),
                      '--force_yml', *overrides], cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / 'experiments' / 'PFDN_x4_s1_lr64' / 'models' / 'net_g_deploy_latest.pth').is_file()
    if not torch.cuda.is_available():  # the CPU notes: compile and bf16 off, each said once
        assert proc.stderr.count('train.compile: true is turned off') == 1
        assert proc.stderr.count('train.amp: bf16 is turned off') == 1


# ---------------------------------------------------------------------------- every check before the folder
@pytest.fixture(scope='module')
def trained(photos, tmp_path_factory):
    """A trained tiny experiment (a save at iteration 2) in a folder of its own, and its yml."""
    root = tmp_path_factory.mktemp('trained')
    yml = write_yml(tiny_options('exp', datasets={'train': train_set(photos), 'val': val_set(photos)},
                                 network_g={'upscale': 4},
                                 train={'total_iter': 2}, val={'val_freq': 2, 'save_img': False},
                                 logger={'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False}), root)
    proc = run_group([sys.executable, '-m', 'pfdn_arch.cli', 'train', '-opt', yml], cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root, yml


RERUNS = [
    (['datasets:train:gt_size=2048'], 'smaller than the LQ crop 512'),
    (['scale=2'], 'network_g.upscale'),
    (['network_g:upscale=2'], 'network_g.upscale sets 2'),
    (['network_g:type=EDSR'], 'EDSR takes no argument num_partial_feat'),
    (['train:scheduler:type=CosineAnnealingRestartLR'], 'CosineAnnealingRestartLR takes periods'),
    (['datasets:train:type=PairedImageDataset'], 'io_backend'),
    (['path:pretrain_network_g=@DEPLOYED'], 'deployed (fused) form'),
    (['path:pretrain_network_g=@EDSR'], 'does not fit this PFDN'),
    (['--launcher', 'pytorch'], 'torchrun'),
    (['train:optim_g:type=SGD'], "'SGD' is not an optimizer PFDNModel builds"),
    (['train:pixel_opt:type=PerceptualLoss'], 'PerceptualLoss takes no argument loss_weight'),
]


@pytest.mark.parametrize('extra, named', RERUNS)
def test_a_failing_rerun_leaves_the_trained_experiment_byte_for_byte(trained, capsys, monkeypatch, extra, named):
    from basicsr.archs.edsr_arch import EDSR

    root, yml = trained
    monkeypatch.chdir(root)
    monkeypatch.delenv('RANK', raising=False)
    torch.save(tiny_state(deploy=True), root / 'deployed.pth')
    torch.save({'params': EDSR(3, 3, num_feat=8, num_block=1).state_dict()}, root / 'edsr.pth')
    before = snapshot(root / 'experiments' / 'exp')
    args = ['train', '-opt', yml]
    if extra[0].startswith('--'):
        args += extra
    else:
        args += ['--force_yml'] + [e.replace('@DEPLOYED', str(root / 'deployed.pth')).replace('@EDSR', str(
            root / 'edsr.pth')) for e in extra]
    code, _, err = cli(args, capsys)
    one_error(code, err, named)
    assert snapshot(root / 'experiments' / 'exp') == before
    assert sorted(os.listdir(root / 'experiments')) == ['.exp.pfdn-lock', 'exp']  # nothing archived


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


def test_a_failure_after_basicsr_archived_the_folder_puts_it_back(trained, capsys, monkeypatch):
    """What no check can foresee (here: the dataset cannot be built) still leaves the trained experiment as it was."""
    from pfdn_arch.data import paired_crop_dataset
    from pfdn_arch.errors import DataError

    root, yml = trained
    monkeypatch.chdir(root)
    before = snapshot(root / 'experiments' / 'exp')

    def broken(self, opt):
        raise DataError('cannot be read (a disk error)', opt['dataroot_gt'])
    monkeypatch.setattr(paired_crop_dataset.PairedCropDataset, '__init__', broken)
    code, _, err = cli(['train', '-opt', yml], capsys)
    one_error(code, err, 'a disk error')
    assert any('is back as it was' in line for line in err)
    assert snapshot(root / 'experiments' / 'exp') == before
    assert sorted(os.listdir(root / 'experiments')) == ['.exp.pfdn-lock', 'exp']


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


# ------------------------------------------------------------------------------ the shipped ymls on this machine
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


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_tensorboard_starts_from_the_readme_install_and_serves_a_logged_scalar(photos, tmp_path):
    yml = write_yml(tiny_options('tb', datasets={'train': train_set(photos)}, train={'total_iter': 2},
                                 logger={'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': True}), tmp_path)
    proc = run_group([sys.executable, '-m', 'pfdn_arch.cli', 'train', '-opt', yml], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    port = free_port()
    tb = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), 'tensorboard'), '--logdir',
                           str(tmp_path / 'tb_logger'), '--port', str(port), '--host', '127.0.0.1'],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline, tags = time.time() + 120, {}
        while time.time() < deadline and not tags.get('tb'):
            assert tb.poll() is None, tb.stderr.read()[-2000:]
            try:
                with urllib.request.urlopen(f'http://127.0.0.1:{port}/data/plugin/scalars/tags', timeout=5) as r:
                    tags = json.load(r)
            except OSError:
                time.sleep(0.5)
        tag = next(t for t in tags['tb'] if 'l_pix' in t)
        url = f'http://127.0.0.1:{port}/data/plugin/scalars/scalars?run=tb&tag={urllib.request.quote(tag)}'
        with urllib.request.urlopen(url, timeout=10) as r:
            points = json.load(r)
        assert points and np.isfinite(points[0][2]) and points[0][1] >= 1
    finally:
        tb.terminate()
        tb.wait(30)


# ------------------------------------------------------------------------------------------------- x2 and x3
@pytest.mark.parametrize('kind', ['train', 'test'])
@pytest.mark.parametrize('scale', [2, 3])
def test_the_shipped_x2_x3_ymls_are_the_x4_ones_rescaled(kind, scale):
    from pfdn_arch.recipe.scales import rescaled
    x4 = read_yml(os.path.join(ROOT, 'options', f'{kind}_pfdn_x4.yml'))
    shipped = read_yml(os.path.join(ROOT, 'options', f'{kind}_pfdn_x{scale}.yml'))
    assert shipped == rescaled(x4, scale)
    assert shipped['scale'] == shipped['network_g']['upscale'] == scale
    assert all(f'X{scale}' in ds['dataroot_lq'] for ds in shipped['datasets'].values())


@pytest.mark.parametrize('scale', [2, 3])
def test_x2_x3_train_test_infer_and_export(tmp_path, capsys, monkeypatch, scale):
    from pfdn_arch.data import preparation as prep
    from pfdn_arch.files.samples import write_samples

    monkeypatch.chdir(tmp_path)
    write_samples('hr', ('astronaut.png', 'coffee.png'))
    assert cli(['prepare', 'benchmark', '--hr', 'hr', '--name', 'Set5', '--scales', scale], capsys)[0] == 0
    lr = f'datasets/benchmark/Set5/LR_bicubic/X{scale}'
    prep.make_paired_lmdb('hr', lr, 'g.lmdb', 'q.lmdb', 'decoded', scale)
    yml = 'options/train_pfdn_x%d.yml' % scale
    small = ['num_gpu=0', 'datasets:train:num_worker_per_gpu=0', 'datasets:train:dataroot_gt=g.lmdb',
             'datasets:train:dataroot_lq=q.lmdb', 'datasets:train:batch_size_per_gpu=2', 'datasets:train:gt_size=%d'
             % (32 * scale), 'train:total_iter=2', 'logger:save_checkpoint_freq=2', 'val:val_freq=2',
             'logger:use_tb_logger=false', 'network_g:num_feat=16', 'network_g:num_partial_feat=8',
             'network_g:esa_channels=8', 'network_g:num_block=2']
    code, _, err = cli(['train', '-opt', yml, '--force_yml', *small], capsys)
    assert code == 0, err
    deployed = f'experiments/PFDN_x{scale}_s1_lr64/models/net_g_deploy_latest.pth'
    opt = read_yml(os.path.join(ROOT, 'options', f'test_pfdn_x{scale}.yml'))
    opt['network_g'].update(num_feat=16, num_partial_feat=8, esa_channels=8, num_block=2)
    opt['path']['pretrain_network_g'] = deployed
    code, _, err = cli(['test', '-opt', write_yml(opt, '.')], capsys)
    assert code == 0, err
    table = open(f"results/{opt['name']}/results.md").read()
    assert 'Set5' in table
    code, _, err = cli(['infer', '-i', 'hr/coffee.png', '-o', 'up', '--weights', deployed, '--backend', 'torch'],
                       capsys)
    assert code == 0, err
    assert cv2.imread('up/coffee.png').shape[:2] == tuple(s * scale for s in cv2.imread('hr/coffee.png').shape[:2])
    assert cli(['export', '--weights', deployed, '--out', 'exported', '--formats', 'pth'], capsys)[0] == 0
    assert os.path.isfile(f'exported/pfdn_x{scale}.pth')


# --------------------------------------------------------------------------- derived data remembers its source
def test_derived_data_is_remade_when_its_source_changed_in_place(tmp_path, capsys, monkeypatch):
    from pfdn_arch.data import lmdb_store
    from pfdn_arch.files.samples import write_samples

    monkeypatch.chdir(tmp_path)
    write_samples('hr', ('astronaut.png', 'coffee.png'))
    assert cli(['prepare', 'lr', '--hr', 'hr', '--out', 'lr'], capsys)[0] == 0
    assert cli(['prepare', 'lmdb', '--gt', 'hr', '--lq', 'lr', '--gt-lmdb', 'g.lmdb', '--lq-lmdb', 'q.lmdb'],
               capsys)[0] == 0
    assert cli(['prepare', 'subimages', '--in', 'hr', '--out', 'sub', '--crop', 256, '--step', 256], capsys)[0] == 0
    img = cv2.imread('hr/coffee.png')
    img[:100] = 255 - img[:100]  # edited in place: same name, same size
    cv2.imwrite('hr/coffee.png', img)
    old_lr = cv2.imread('lr/coffee.png')
    code, _, err = cli(['prepare', 'lr', '--hr', 'hr', '--out', 'lr'], capsys)
    assert code == 0 and any('1 LR image(s) in lr are not what was made from their HR images' in e for e in err)
    assert not np.array_equal(cv2.imread('lr/coffee.png'), old_lr)
    code, _, err = cli(['prepare', 'lmdb', '--gt', 'hr', '--lq', 'lr', '--gt-lmdb', 'g.lmdb', '--lq-lmdb', 'q.lmdb'],
                       capsys)
    assert code == 0 and sum('made from other versions of 1 of its images' in e for e in err) == 2
    store = lmdb_store.DecodedLMDB('g.lmdb')
    with store.begin() as txn:
        assert np.array_equal(store.array(txn, 'coffee'), img[:, :, ::-1][:img.shape[0] // 4 * 4, :img.shape[1] // 4 * 4])
    code, _, err = cli(['prepare', 'subimages', '--in', 'hr', '--out', 'sub', '--crop', 256, '--step', 256], capsys)
    assert code == 0 and any('sub-image(s) in sub were cut from other versions' in e for e in err)
    assert np.array_equal(cv2.imread('sub/coffee_s001.png'), img[:256, :256])
    kept = {f: os.stat(os.path.join('lr', f)).st_mtime_ns for f in os.listdir('lr')}
    code, _, err = cli(['prepare', 'lr', '--hr', 'hr', '--out', 'lr'], capsys)  # nothing changed: nothing remade
    assert code == 0 and not err and kept == {f: os.stat(os.path.join('lr', f)).st_mtime_ns for f in os.listdir('lr')}


def test_an_lmdb_without_a_record_is_kept_with_a_note(tmp_path, capsys, monkeypatch):
    from pfdn_arch.files.samples import write_samples
    from pfdn_arch.files.sources import Sources
    monkeypatch.chdir(tmp_path)
    write_samples('hr', ('astronaut.png',))
    cli(['prepare', 'lr', '--hr', 'hr', '--out', 'lr'], capsys)
    cli(['prepare', 'lmdb', '--gt', 'hr', '--lq', 'lr', '--gt-lmdb', 'g.lmdb', '--lq-lmdb', 'q.lmdb'], capsys)
    os.remove(Sources('g.lmdb').path)  # as an older version (or BasicSR's create_lmdb.py) left it
    before = snapshot(tmp_path / 'g.lmdb')
    code, _, err = cli(['prepare', 'lmdb', '--gt', 'hr', '--lq', 'lr', '--gt-lmdb', 'g.lmdb', '--lq-lmdb', 'q.lmdb'],
                       capsys)
    assert code == 0 and any('g.lmdb has no record of what it was made from' in e for e in err)
    assert snapshot(tmp_path / 'g.lmdb') == before


# -------------------------------------------------------------------------------- pictures as users bring them
@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp('tiny') / 'tiny.pth'
    torch.save(tiny_state(), path)
    return path


def infer(args, capsys, tiny):
    return cli(['infer', '--weights', tiny, '--backend', 'torch', *map(str, args)], capsys)


@pytest.mark.parametrize('ext', ['.heic', '.avif'])
def test_phone_and_web_formats_are_read_and_written_back_in_kind(tiny, tmp_path, capsys, ext):
    import pillow_heif
    from PIL import Image
    pillow_heif.register_heif_opener()
    photo = sample_image('chelsea.png')[:40, :48, ::-1]
    Image.fromarray(np.ascontiguousarray(photo)).save(tmp_path / f'p{ext}', quality=95)
    code, _, err = infer(['-i', tmp_path / f'p{ext}', '-o', tmp_path / 'out'], capsys, tiny)
    assert code == 0, err
    with Image.open(tmp_path / 'out' / f'p{ext}') as im:
        assert im.format in ('HEIF', 'AVIF') and im.size == (48 * 4, 40 * 4)


@pytest.mark.parametrize('ext, named', [('.jxl', 'JPEG XL'), ('.exr', 'OpenEXR'), ('.gif', 'GIF')])
def test_formats_that_are_not_upscaled_say_why_without_advising_a_rename(tiny, tmp_path, capsys, ext, named):
    (tmp_path / f'a{ext}').write_bytes(b'\x00' * 64)
    line = one_error(*infer(['-i', tmp_path / f'a{ext}', '-o', tmp_path / 'out'], capsys, tiny)[::2], named,
                     status=2)
    assert 'rename' not in line


def test_an_rgba_tiff_keeps_its_brightness(weights, tmp_path, capsys):
    from PIL import Image
    flat = np.zeros((24, 24, 4), np.uint8)
    flat[..., :3], flat[..., 3] = (200, 120, 60), 128
    Image.fromarray(flat, 'RGBA').save(tmp_path / 'a.tif')
    assert infer(['-i', tmp_path / 'a.tif', '-o', tmp_path / 'out'], capsys, weights)[0] == 0
    with Image.open(tmp_path / 'out' / 'a.tif') as im:
        out = np.asarray(im.convert('RGBA')).astype(float)
    # straight alpha in and out: the released network keeps a flat colour (premultiplied colour would be halved)
    assert abs(out[..., 3].mean() - 128) < 2
    assert np.abs(out[8:-8, 8:-8, :3].mean((0, 1)) - (200, 120, 60)).max() < 3


def test_png_gamma_chunks_are_kept(tiny, tmp_path, capsys):
    import struct
    import zlib
    from PIL import Image
    Image.fromarray(np.ascontiguousarray(sample_image('chelsea.png')[:24, :24, ::-1])).save(tmp_path / 'g.png')
    data, chunk = (tmp_path / 'g.png').read_bytes(), b'gAMA' + struct.pack('>I', 45455)
    gama = struct.pack('>I', 4) + chunk + struct.pack('>I', zlib.crc32(chunk))
    (tmp_path / 'g.png').write_bytes(data[:33] + gama + data[33:])
    assert infer(['-i', tmp_path / 'g.png', '-o', tmp_path / 'out'], capsys, tiny)[0] == 0
    with Image.open(tmp_path / 'out' / 'g.png') as im:
        assert abs(im.info['gamma'] - 0.45455) < 1e-5


def test_a_file_name_at_the_filesystem_limit_is_upscaled(tiny, tmp_path, capsys):
    name = 'x' * (255 - 4) + '.png'
    cv2.imwrite(str(tmp_path / name), sample_image('chelsea.png')[:20, :20])
    cv2.imwrite(str(tmp_path / 'b.png'), sample_image('chelsea.png')[:20, :20])
    code, out, err = infer(['-i', tmp_path, '-o', tmp_path / 'out'], capsys, tiny)
    assert code == 0 and '2 upscaled' in out and (tmp_path / 'out' / name).is_file()


def test_one_file_that_cannot_be_written_does_not_stop_the_folder(tiny, tmp_path, capsys):
    src = tmp_path / 'in'
    (src / 'sub').mkdir(parents=True)
    for rel in ('a.png', 'sub/b.png', 'z.png'):
        cv2.imwrite(str(src / rel), sample_image('chelsea.png')[:20, :20])
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'sub').write_text('a file where the subfolder would go')
    code, out, err = infer(['-i', src, '-o', tmp_path / 'out'], capsys, tiny)
    assert code == 1 and '2 upscaled' in out
    assert (tmp_path / 'out' / 'a.png').is_file() and (tmp_path / 'out' / 'z.png').is_file()
    assert sum(line.startswith('error: ') and 'b.png' in line for line in err) == 1


def test_output_names_and_repeated_inputs(tiny, tmp_path, capsys):
    for name in ('a.png', 'b.png'):
        cv2.imwrite(str(tmp_path / name), sample_image('chelsea.png')[:20, :24])
    code, out, _ = infer(['-i', tmp_path / 'a.png', '-o', tmp_path / 'up' / 'cat_x4.png'], capsys, tiny)
    assert code == 0 and cv2.imread(str(tmp_path / 'up' / 'cat_x4.png')).shape[:2] == (80, 96)
    assert not (tmp_path / 'up' / 'cat_x4.png').is_dir()
    code, out, _ = infer(['-i', tmp_path / 'a.png', '-i', tmp_path / 'b.png', '-o', tmp_path / 'both'], capsys, tiny)
    assert code == 0 and sorted(os.listdir(tmp_path / 'both')) == ['a.png', 'b.png']
    one_error(*infer(['-i', tmp_path / 'a.png', '-i', tmp_path / 'b.png', '-o', tmp_path / 'x.png'], capsys,
                     tiny)[::2], 'names one file, but 2 inputs')
    one_error(*infer(['-i', tmp_path / 'a.png', '-o', tmp_path / 'x.gif'], capsys, tiny)[::2], '.gif')
    assert not (tmp_path / 'x.gif').exists() and not (tmp_path / 'x.png').exists()


def test_every_export_file_gets_the_same_permissions(weights, tmp_path, capsys):
    assert cli(['export', '--weights', weights, '--out', tmp_path / 'e'], capsys)[0] == 0
    modes = {f: os.stat(tmp_path / 'e' / f).st_mode & 0o777 for f in os.listdir(tmp_path / 'e')}
    assert len(set(modes.values())) == 1, modes
    cv2.imwrite(str(tmp_path / 'x.png'), sample_image('chelsea.png')[:20, :20])
    code, _, err = cli(['infer', '-i', tmp_path / 'x.png', '-o', tmp_path / 'o', '--weights',
                        tmp_path / 'e' / 'pfdn_x4.safetensors', '--backend', 'torch'], capsys)
    assert code == 0, err  # the package's own .safetensors runs as --weights


def test_the_skip_message_says_where_to_put_the_data(monkeypatch):
    monkeypatch.delenv('CI', raising=False)
    with pytest.raises(pytest.skip.Exception, match='PFDN_SHARED') as skipped:
        need_shared('/nowhere/weights/team08_PFDN.pth')
    assert 'team08_PFDN.pth' in str(skipped.value)


# ----------------------------------------------------------------------------------- films, per codec x container
@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    av = pytest.importorskip('av', reason="PyAV is not installed: pip install -e '.[video]'")
    path = tmp_path_factory.mktemp('clip') / 'c.mp4'
    with av.open(str(path), 'w') as c:
        s = c.add_stream('libx264', rate=10)
        s.width, s.height, s.pix_fmt = 48, 32, 'yuv420p'
        for i in range(12):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.roll(sample_image('chelsea.png')[:32, :48], i, 1)),
                                           format='bgr24')
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.mark.parametrize('codec, ext', [(None, '.webm'), ('vp9', '.mp4'), ('vp9', '.mkv'), ('av1', '.mkv'),
                                        ('av1', '.webm'), (None, '.avi'), (None, '.ts'), ('h264', '.mov')])
def test_each_codec_goes_into_each_container_that_holds_it(tiny, clip, tmp_path, capsys, codec, ext):
    import av
    out = tmp_path / f'up{ext}'
    args = ['-i', clip, '-o', out, '--segment', 0.5] + (['--codec', codec] if codec else [])
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    code, _, err = infer(args, capsys, tiny)
    assert code == 0, err
    # SVT-AV1 makes its caller real-time where it may (root): the thread is put back as it was
    assert (os.sched_getscheduler(0), os.sched_getparam(0)) == before
    with av.open(str(out)) as c:
        frames = [f for f in c.decode(c.streams.video[0])]
    assert len(frames) == 12 and (frames[0].width, frames[0].height) == (192, 128)
    assert not list(tmp_path.glob('.*pfdn-parts'))


def test_prepare_df2k_at_x2_makes_the_paths_the_x2_yml_reads(tmp_path, capsys, monkeypatch):
    from pfdn_arch.data import preparation as prep
    from pfdn_arch.data.lmdb_store import DecodedLMDB
    from pfdn_arch.files.samples import write_samples

    monkeypatch.chdir(tmp_path)
    write_samples('hr', ('astronaut.png', 'chelsea.png'))
    assert cli(['prepare', 'df2k', '--hr', 'hr', '--root', 'datasets/DF2K', '--scale', 2, '--workers', 1],
               capsys)[0] == 0
    train = read_yml(os.path.join(ROOT, 'options', 'train_pfdn_x2.yml'))['datasets']['train']
    gt, lq = DecodedLMDB(train['dataroot_gt']), DecodedLMDB(train['dataroot_lq'])
    assert set(gt.shapes) == set(lq.shapes) == {'astronaut', 'chelsea'}
    assert all(gt.shapes[k][:2] == (lq.shapes[k][0] * 2, lq.shapes[k][1] * 2) for k in gt.shapes)
    assert prep.read_lmdb_keys('datasets/DF2K/DF2K_HR_mod2.lmdb') == ['astronaut', 'chelsea']


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
    from pfdn_arch.recipe.preflight import check_networks
    run = RunOptions(os.path.join(ROOT, 'options', 'test_pfdn_x4.yml'), False, ['network_g:type=EDSR'])
    with pytest.raises(OptionsError, match='EDSR takes no argument deploy') as err:
        check_networks(run.opt)
    assert err.value.path == 'network_g.deploy'
