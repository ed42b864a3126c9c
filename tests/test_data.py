"""Data preparation and `basicsr test` on the standard protocol."""
import os

import cv2
import numpy as np
import pytest
import yaml
from basicsr.data import build_dataset

from conftest import cli, one_error, ROOT, snapshot, tiny_options, train_set, write_yml
from pfdn_arch.data import preparation as prep
from pfdn_arch.errors import DataError, OutputExists
from pfdn_arch.evaluation.protocol import bicubic_lr
from pfdn_arch.layout.samples import sample_image


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


def test_derived_data_is_remade_when_its_source_changed_in_place(tmp_path, capsys, monkeypatch):
    from pfdn_arch.data import lmdb_store
    from pfdn_arch.layout.samples import write_samples

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
    from pfdn_arch.layout.samples import write_samples
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


def test_damaged_lmdbs_are_refused_by_prepare_and_by_train(photos, tmp_path, capsys, monkeypatch):
    import shutil
    monkeypatch.chdir(tmp_path)
    gt, lq = (tmp_path / 'gt.lmdb', tmp_path / 'lq.lmdb')
    shutil.copytree(photos['gt'], gt)
    shutil.copytree(photos['lq'], lq)
    data = gt / 'data.mdb'
    data.write_bytes(data.read_bytes()[:len(data.read_bytes()) // 2])  # a copy cut short
    code, _, err = cli(['prepare', 'lmdb', '--gt', photos['hr'], '--lq', photos['lr'], '--gt-lmdb', gt, '--lq-lmdb', lq],
                       capsys)
    one_error(code, err, gt, 'damaged')
    opt = tiny_options('damaged', datasets={'train': dict(train_set(photos), dataroot_gt=str(gt), dataroot_lq=str(lq))})
    code, _, err = cli(['train', '-opt', write_yml(opt, tmp_path)], capsys)
    one_error(code, err, 'dataroot_gt', 'cut short')
    data.write_bytes(b'')
    code, _, err = cli(['train', '-opt', write_yml(opt, tmp_path)], capsys)
    one_error(code, err, 'dataroot_gt', 'empty')
    shutil.rmtree(gt)
    shutil.copytree(photos['gt'], gt)
    with open(gt / 'meta_info.txt', 'a') as f:
        f.write('ghost.raw (64,64,3) raw\n')
    code, _, err = cli(['train', '-opt', write_yml(opt, tmp_path)], capsys)
    one_error(code, err, 'ghost')
    assert not (tmp_path / 'experiments').exists()
    code, _, err = cli(['prepare', 'lmdb', '--gt', photos['hr'], '--lq', photos['lr'], '--gt-lmdb', tmp_path / 'x.lmdb',
                        '--lq-lmdb', tmp_path / 'x.lmdb'], capsys)
    one_error(code, err, '--lq-lmdb', 'GT LMDB too')


def _lmdb_keys(path):
    from pfdn_arch.data.preparation import read_lmdb_keys
    return sorted(read_lmdb_keys(str(path)))


def _hr_removed(root, hr):
    os.remove(hr / 'coffee.png')


def _hr_added(root, hr):
    cv2.imwrite(str(hr / 'rocket.png'), sample_image('rocket.jpg'))


def _lr_edited(root, hr):  # by hand, the same size
    path = root / 'DF2K_LR_bicubic_X4' / 'chelsea.png'
    image = cv2.imread(str(path))
    image[5:15, 5:15] = 0
    cv2.imwrite(str(path), image)


def _record(name, text):
    def damage(root, hr):
        (root / f'.{name}.pfdn-sources.json').write_text(text)
    return damage


def _stale_left(root, hr):  # a kill after the new LMDB was in place, before the old one was removed
    import shutil
    shutil.copytree(root / 'DF2K_HR.lmdb', root / 'DF2K_HR.lmdb.stale')


def _killed_between_renames(root, hr):  # the old LMDB set aside, the new one not yet in place
    os.rename(root / 'DF2K_HR.lmdb', root / 'DF2K_HR.lmdb.stale')


def _meta_edited(root, hr):
    with open(root / 'DF2K_LR_bicubic_X4.lmdb' / 'meta_info.txt', 'a') as f:
        f.write('\n')


@pytest.mark.parametrize('damage, says', [
    (_hr_removed, 'no longer among the inputs'), (_hr_added, 'new, e.g. rocket'), (_lr_edited, 'edited'),
    (_record('DF2K_LR_bicubic_X4', '{"outputs": []}'), 'not a record this package wrote'),
    (_record('DF2K_LR_bicubic_X4', '{"outputs": null}'), 'not a record this package wrote'),
    (_record('DF2K_LR_bicubic_X4', '{"outputs": {"chelsea.png": 7}}'), 'not a record this package wrote'),
    (_record('DF2K_HR.lmdb', 'garbage'), 'not a record this package wrote'),
    (_stale_left, 'DF2K_HR.lmdb.stale'), (_killed_between_renames, None), (_meta_edited, 'changed since it was made'),
], ids=['hr_removed', 'hr_added', 'lr_edited', 'record_list', 'record_null', 'record_entry', 'lmdb_record_garbage',
        'stale_left', 'killed_between_renames', 'meta_edited'])
def test_derived_data_is_remade_to_match_its_sources_after_any_change(tmp_path, capsys, monkeypatch, damage, says):
    """Prepared data, changed behind prepare's back, then prepare rerun: the result is what a clean run from the
    inputs as they are now makes (the same LR pixels, the same LMDB keys), nothing stale beside it, and the note
    says what was found."""
    from pfdn_arch.layout.samples import write_samples
    monkeypatch.chdir(tmp_path)
    hr = tmp_path / 'hr'
    write_samples(str(hr), ('astronaut.png', 'chelsea.png', 'coffee.png'))
    root = tmp_path / 'datasets' / 'DF2K'
    assert cli(['prepare', 'df2k', '--hr', hr, '--workers', '1'], capsys)[0] == 0
    damage(root, hr)
    code, out, err = cli(['prepare', 'df2k', '--hr', hr, '--workers', '1'], capsys)
    assert code == 0 and not [line for line in err if line.startswith('error')], err
    assert says is None or any(says in line for line in err), err
    names = sorted(os.path.splitext(n)[0] for n in os.listdir(hr))
    lr = root / 'DF2K_LR_bicubic_X4'
    assert sorted(os.path.splitext(n)[0] for n in os.listdir(lr)) == names
    assert _lmdb_keys(root / 'DF2K_HR.lmdb') == _lmdb_keys(root / 'DF2K_LR_bicubic_X4.lmdb') == names
    assert sorted(n for n in os.listdir(root) if not n.endswith('.pfdn-lock')) == [
        '.DF2K_HR.lmdb.pfdn-sources.json', '.DF2K_LR_bicubic_X4.lmdb.pfdn-sources.json',
        '.DF2K_LR_bicubic_X4.pfdn-sources.json', 'DF2K_HR.lmdb', 'DF2K_LR_bicubic_X4',
        'DF2K_LR_bicubic_X4.lmdb']  # nothing stale, no partial (the run locks stay: empty, held by no process)
    clean = tmp_path / 'clean'
    assert cli(['prepare', 'df2k', '--hr', hr, '--root', clean, '--workers', '1'], capsys)[0] == 0
    for name in os.listdir(lr):  # the same pixels as a clean run's
        assert (lr / name).read_bytes() == (clean / 'DF2K_LR_bicubic_X4' / name).read_bytes() or np.array_equal(
            cv2.imread(str(lr / name)), cv2.imread(str(clean / 'DF2K_LR_bicubic_X4' / name))), name
    again = cli(['prepare', 'df2k', '--hr', hr, '--workers', '1'], capsys)  # and settled: nothing more to say
    assert again[0] == 0 and not [line for line in again[2] if line.startswith('note')], again[2]


def test_a_second_prepare_of_the_same_outputs_is_one_line_while_the_first_runs(photos, tmp_path, capsys):
    from pfdn_arch.files.locks import owned
    gt, lq = tmp_path / 'gt.lmdb', tmp_path / 'lq.lmdb'
    with owned(str(tmp_path), 'lq.lmdb'):  # the first run, holding its output
        code, _, err = cli(['prepare', 'lmdb', '--gt', photos['hr'], '--lq', photos['lr'], '--gt-lmdb', gt,
                            '--lq-lmdb', lq], capsys)
    one_error(code, err, lq, 'in use by another run (process')
    assert not gt.exists() and not lq.exists()
    with owned(str(tmp_path), 'lr'):
        code, _, err = cli(['prepare', 'lr', '--hr', photos['hr'], '--out', tmp_path / 'lr'], capsys)
    one_error(code, err, tmp_path / 'lr', 'in use by another run')
