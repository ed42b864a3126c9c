"""x2 and x3: the shipped ymls are the x4 ones rescaled, and a whole x2/x3 run (prepare, train, test, infer,
export) works."""
import os

import cv2
import pytest

from conftest import cli, ROOT, write_yml
from pfdn_arch.checks.options import read_yml


@pytest.mark.parametrize('kind', ['train', 'test'])
@pytest.mark.parametrize('scale', [2, 3])
def test_the_shipped_x2_x3_ymls_are_the_x4_ones_rescaled(kind, scale):
    from pfdn_arch.checks.scales import rescaled
    x4 = read_yml(os.path.join(ROOT, 'options', f'{kind}_pfdn_x4.yml'))
    shipped = read_yml(os.path.join(ROOT, 'options', f'{kind}_pfdn_x{scale}.yml'))
    assert shipped == rescaled(x4, scale)
    assert shipped['scale'] == shipped['network_g']['upscale'] == scale
    assert all(f'X{scale}' in ds['dataroot_lq'] for ds in shipped['datasets'].values())


@pytest.mark.parametrize('scale', [2, 3])
def test_x2_x3_train_test_infer_and_export(tmp_path, capsys, monkeypatch, scale):
    from pfdn_arch.data import preparation as prep
    from pfdn_arch.layout.samples import write_samples

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


def test_prepare_df2k_at_x2_makes_the_paths_the_x2_yml_reads(tmp_path, capsys, monkeypatch):
    from pfdn_arch.data import preparation as prep
    from pfdn_arch.data.lmdb_store import DecodedLMDB
    from pfdn_arch.layout.samples import write_samples

    monkeypatch.chdir(tmp_path)
    write_samples('hr', ('astronaut.png', 'chelsea.png'))
    assert cli(['prepare', 'df2k', '--hr', 'hr', '--root', 'datasets/DF2K', '--scale', 2, '--workers', 1],
               capsys)[0] == 0
    train = read_yml(os.path.join(ROOT, 'options', 'train_pfdn_x2.yml'))['datasets']['train']
    gt, lq = DecodedLMDB(train['dataroot_gt']), DecodedLMDB(train['dataroot_lq'])
    assert set(gt.shapes) == set(lq.shapes) == {'astronaut', 'chelsea'}
    assert all(gt.shapes[k][:2] == (lq.shapes[k][0] * 2, lq.shapes[k][1] * 2) for k in gt.shapes)
    assert prep.read_lmdb_keys('datasets/DF2K/DF2K_HR_mod2.lmdb') == ['astronaut', 'chelsea']
