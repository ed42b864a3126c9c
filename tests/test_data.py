"""Data preparation and `basicsr test` on the standard protocol."""
import os

import cv2
import numpy as np
import pytest
import yaml

from basicsr.data import build_dataset
from conftest import ROOT, cli
from pfdn_arch.data import preparation as prep
from pfdn_arch.recipe.protocol import bicubic_lr
from pfdn_arch.errors import DataError, OutputExists


@pytest.fixture
def hr_dir(photos):
    """The folder of the three built-in HR photos (conftest's session-wide ``photos``)."""
    return photos['hr']


def test_lr_is_matlab_bicubic_of_the_mod_cropped_hr_and_rerun_keeps_files(hr_dir, tmp_path):
    lr_dir = tmp_path / 'lr'
    assert prep.make_lr(str(hr_dir), str(lr_dir), 4) == 3
    hr = cv2.imread(str(hr_dir / 'chelsea.png'))  # 300 x 451: mod-crop to 300 x 448
    lr = cv2.imread(str(lr_dir / 'chelsea.png'))
    assert lr.shape == (75, 112, 3)
    assert np.array_equal(lr, bicubic_lr(hr, 4)[1]) and bicubic_lr(hr, 4)[0].shape == (300, 448, 3)
    mtime = os.path.getmtime(lr_dir / 'chelsea.png')
    assert prep.make_lr(str(hr_dir), str(lr_dir), 4) == 0  # nothing redone, nothing overwritten
    assert os.path.getmtime(lr_dir / 'chelsea.png') == mtime


def test_subimages_paired_lmdb_feed_basicsr(hr_dir, tmp_path):
    sub, sub_lr = tmp_path / 'sub', tmp_path / 'sub_lr'
    skipped = prep.extract_subimages(str(hr_dir), str(sub), 320, 160)
    assert skipped == 1  # chelsea is 300 px tall: smaller than the crop
    crops = sorted(os.listdir(sub))
    # astronaut 512x512 -> starts 0, 160 and 192 (a crop flush with the edge takes the leftover): 3x3; coffee 400x600 -> 2x3
    assert len(crops) == 9 + 6 and 'astronaut_s009.png' in crops
    assert all(cv2.imread(str(sub / c)).shape == (320, 320, 3) for c in crops)
    prep.make_lr(str(sub), str(sub_lr), 4)
    gt_lmdb, lq_lmdb = str(tmp_path / 'gt.lmdb'), str(tmp_path / 'lq.lmdb')
    assert prep.make_paired_lmdb(str(sub), str(sub_lr), gt_lmdb, lq_lmdb, 'png') == len(crops)
    meta = open(os.path.join(gt_lmdb, 'meta_info.txt')).read().splitlines()
    assert meta[0].endswith('.png (320,320,3) 1') and '.' not in meta[0].split('.png')[0]
    assert prep.read_lmdb_keys(gt_lmdb) == prep.read_lmdb_keys(lq_lmdb)
    ds = build_dataset({'name': 't', 'type': 'PairedImageDataset', 'dataroot_gt': gt_lmdb, 'dataroot_lq': lq_lmdb,
                        'io_backend': {'type': 'lmdb'}, 'gt_size': 128, 'use_hflip': True, 'use_rot': True,
                        'scale': 4, 'phase': 'train'})
    item = ds[0]
    assert tuple(item['gt'].shape) == (3, 128, 128) and tuple(item['lq'].shape) == (3, 32, 32)
    with pytest.raises(OutputExists) as err:
        prep.make_paired_lmdb(str(sub), str(sub_lr), gt_lmdb, str(tmp_path / 'other.lmdb'), 'decoded')
    assert err.value.path == gt_lmdb


def test_mismatched_gt_and_lq_are_refused_before_writing(hr_dir, tmp_path):
    lr = tmp_path / 'lr'
    prep.make_lr(str(hr_dir), str(lr), 4)
    os.remove(lr / 'coffee.png')
    with pytest.raises(DataError, match='different image names'):
        prep.make_paired_lmdb(str(hr_dir), str(lr), str(tmp_path / 'g.lmdb'), str(tmp_path / 'l.lmdb'))
    assert not (tmp_path / 'g.lmdb').exists()


def test_interrupted_lmdb_leaves_nothing_under_the_real_name(hr_dir, tmp_path, monkeypatch):
    calls = []

    def broken_read(path):
        if calls:
            raise KeyboardInterrupt
        calls.append(path)
        return cv2.imread(path)
    monkeypatch.setattr(prep, '_read', broken_read)
    with pytest.raises(KeyboardInterrupt):
        prep.make_lmdb(str(hr_dir), str(tmp_path / 'x.lmdb'))
    assert not (tmp_path / 'x.lmdb').exists()
    monkeypatch.undo()
    assert prep.make_lmdb(str(hr_dir), str(tmp_path / 'x.lmdb')) == 3  # the rerun completes


def test_prepare_cli_benchmark_layout(set5_hr, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(['prepare', 'benchmark', '--hr', set5_hr, '--name', 'Set5', '--scales', 2, 4], capsys)
    assert code == 0, err
    root = tmp_path / 'datasets' / 'benchmark' / 'Set5'
    assert sorted(os.listdir(root / 'HR')) == sorted(os.listdir(set5_hr))
    for s in (2, 4):
        hr = cv2.imread(str(root / 'HR' / 'baby.png'))
        assert cv2.imread(str(root / 'LR_bicubic' / f'X{s}' / 'baby.png')).shape[:2] == (hr.shape[0] // s,
                                                                                        hr.shape[1] // s)
    assert 'datasets/benchmark/Set5: HR and LR_bicubic/X2/X4' in out


def test_basicsr_test_reproduces_set5_and_writes_table_and_pictures(set5_hr, weights, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli(['prepare', 'benchmark', '--hr', set5_hr, '--name', 'Set5'], capsys)[0] == 0
    opt = yaml.safe_load(open(os.path.join(ROOT, 'options', 'test_pfdn_x4.yml')))
    del opt['datasets']['test_2']  # Urban100 is the benchmark script's job (2 minutes on CPU)
    opt['path']['pretrain_network_g'] = weights
    opt['val']['save_comparison'] = True
    yml = tmp_path / 'test_set5.yml'
    yml.write_text(yaml.safe_dump(opt, sort_keys=False))
    code, _, err = cli(['test', '-opt', yml], capsys)
    assert code == 0, err[-20:]
    assert err[-1] == 'results: results/PFDN_x4_released/ (results.md: the metrics table; the log)'
    table = (tmp_path / 'results' / 'PFDN_x4_released' / 'results.md').read_text()
    assert '| Set5 | 32.04' in table and '| 0.8932 |' in table, table
    pics = os.listdir(tmp_path / 'results' / 'PFDN_x4_released' / 'visualization' / 'Set5')
    assert len(pics) == 5
    strip = cv2.imread(str(tmp_path / 'results' / 'PFDN_x4_released' / 'visualization' / 'Set5' /
                           'baby_HR_bicubic_PFDN.png'))
    assert strip.shape == (22 + 22 + 160, 3 * 160 + 2 * 4, 3)  # titled, captioned crops: HR, bicubic and PFDN
