"""A hostile test matrix, by class: data lost, pictures as devices make them, overrides and options, paths and devices,
checkpoints, data, memory, messages. Each case asserts the exit status, that the message names the culprit, and
that nothing existing changed."""
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
import yaml

from conftest import (ENV, TINY_NET, cli, one_error, run_cli, snapshot, start_cli, tiny_checkpoint, tiny_options,
                      train_set, val_set, write_yml)
from pfdn_arch import PFDN
from pfdn_arch.files.samples import sample_image


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """A small deployed PFDN checkpoint (fast to run) and an RGB test image."""
    return tiny_checkpoint(tmp_path_factory.mktemp('tiny'))


def infer(args, capsys, tiny):
    return cli(['infer', '--weights', tiny, '--backend', 'torch', *args], capsys)


# ----------------------------------------------------------------------------------------------- data lost
def test_two_runs_of_one_name_the_second_is_refused_and_the_first_keeps_its_folder(photos, tmp_path):
    yml = write_yml(tiny_options('same', train={'total_iter': 100000}, datasets={'train': train_set(photos)},
                                 logger={'print_freq': 100, 'save_checkpoint_freq': 2, 'use_tb_logger': False}),
                    tmp_path)
    first = start_cli('train', '-opt', yml, cwd=tmp_path)
    try:
        states = tmp_path / 'experiments' / 'same' / 'training_states'
        deadline = time.time() + 300
        while time.time() < deadline and not (states.is_dir() and any(states.iterdir())):
            time.sleep(0.2)
        second = run_cli('train', '-opt', yml, cwd=tmp_path, timeout=300)
        assert second.returncode == 2
        assert 'experiments/same: is in use by another run (process' in second.stderr.strip().splitlines()[-1]
        assert sorted(os.listdir(tmp_path / 'experiments')) == ['.same.pfdn-lock', 'same']  # nothing archived
        assert first.poll() is None  # the first trains on, in its own folder
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()


def test_temporary_file_cleanup_touches_only_its_own_files(tiny, tmp_path, capsys):
    src, out, d = tmp_path / 'in', tmp_path / 'out', tmp_path / 'd'
    for folder in (src, out, d):
        folder.mkdir()
    cv2.imwrite(str(src / 'a.png'), sample_image('chelsea.png')[:40, :50])
    (out / '.a.png.notes.tmp').write_text('the user\'s notes')
    (d / '.x.pth.v1.tmp').write_text('a user\'s file')
    (out / '.a.png.pfdn-999999999.tmp').write_text('ours, from a killed run')  # no such process
    assert infer(['-i', src, '-o', out], capsys, tiny)[0] == 0
    train = tmp_path / 'train.pth'
    torch.save({'params': PFDN(**{k: v for k, v in TINY_NET.items() if k != 'type'}).state_dict()}, train)
    assert cli(['reparam', '--in', train, '--out', d / 'x.pth'], capsys)[0] == 0
    assert (out / '.a.png.notes.tmp').read_text() == 'the user\'s notes'
    assert (d / '.x.pth.v1.tmp').read_text() == 'a user\'s file'
    assert not (out / '.a.png.pfdn-999999999.tmp').exists()


# ------------------------------------------------------------------------- pictures as devices make them
def icc_profile():
    from PIL import ImageCms
    return ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes()


@pytest.mark.parametrize('ext', ['.png', '.jpg', '.webp', '.tif'])
def test_colour_profiles_are_kept(tiny, tmp_path, capsys, ext):
    from PIL import Image
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    profile = icc_profile()
    Image.fromarray(sample_image('coffee.png')[:40, :50, ::-1]).save(src / f'a{ext}', icc_profile=profile)
    code, _, err = infer(['-i', src, '-o', out], capsys, tiny)
    assert code == 0, err
    with Image.open(out / f'a{ext}') as im:
        assert im.info.get('icc_profile') == profile and im.size == (200, 160)


def png_with_exif_after_the_image_data(path, pixels, exif):
    """A PNG whose eXIf chunk follows its IDAT (allowed, and what PIL must decode the whole image to find)."""
    import struct
    import zlib
    data = cv2.imencode('.png', pixels)[1].tobytes()
    iend = data.rindex(b'IEND') - 4
    body = exif.tobytes()
    chunk = struct.pack('>I', len(body)) + b'eXIf' + body + struct.pack('>I', zlib.crc32(b'eXIf' + body))
    path.write_bytes(data[:iend] + chunk + data[iend:])


@pytest.mark.parametrize('name', ['phone.jpg', 'phone.png', 'after_idat.png', 'jpeg_named.png'])
def test_exif_orientation_is_applied(tiny, tmp_path, capsys, name):
    from PIL import Image
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    stored = sample_image('coffee.png')[:40, :60]  # 60 wide as stored; orientation 6: shown rotated 90 clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    if name == 'after_idat.png':
        png_with_exif_after_the_image_data(src / name, stored, exif)
    else:
        fmt = 'JPEG' if name.endswith('.jpg') or name == 'jpeg_named.png' else 'PNG'
        quality = {'quality': 95} if fmt == 'JPEG' else {}
        Image.fromarray(stored[..., ::-1]).save(src / name, fmt, exif=exif, **quality)
    with Image.open(src / name) as im:
        assert im.getexif().get(0x0112) == 6  # as PIL reads it
    assert infer(['-i', src, '-o', out], capsys, tiny)[0] == 0
    assert cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED).shape == (240, 160, 3)  # upright: 60 tall


def test_a_png_is_decoded_once(tmp_path, monkeypatch):
    """Reading a PNG for upscaling decodes its pixels once (OpenCV), never again in PIL to find its EXIF."""
    from PIL import Image, ImageFile
    from pfdn_arch.files.images import read_picture
    exif = Image.Exif()
    exif[0x0112] = 6
    png_with_exif_after_the_image_data(tmp_path / 'a.png', sample_image('coffee.png')[:40, :60], exif)

    def decoded_again(self):
        raise AssertionError('PIL decoded the image')
    monkeypatch.setattr(ImageFile.ImageFile, 'load', decoded_again)
    assert read_picture(str(tmp_path / 'a.png')).pixels.shape == (60, 40, 3)


def test_multi_frame_files_give_their_first_frame_and_one_note(tiny, tmp_path, capsys):
    from PIL import Image
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    frames = [Image.fromarray(sample_image(n)[:40, :50, ::-1]) for n in ('coffee.png', 'chelsea.png')]
    frames[0].save(src / 'anim.webp', save_all=True, append_images=frames[1:], lossless=True)
    frames[0].save(src / 'pages.tif', save_all=True, append_images=frames[1:])
    code, _, err = infer(['-i', src, '-o', out], capsys, tiny)
    assert code == 0
    notes = [line for line in err if line.startswith('note: ') and 'frames' in line]
    assert len(notes) == 2 and all('2 frames' in n and 'only the first' in n for n in notes), err
    assert sorted(os.listdir(out)) == ['anim.webp', 'pages.tif']


def test_grey_alpha_stays_grey_alpha(tiny, tmp_path, capsys):
    from PIL import Image
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    grey = cv2.cvtColor(sample_image('coffee.png')[:40, :50], cv2.COLOR_BGR2GRAY)
    alpha = np.tile(np.linspace(0, 255, 50, dtype=np.uint8), (40, 1))
    Image.fromarray(np.dstack([grey, alpha]), 'LA').save(src / 'ga.png')
    assert infer(['-i', src, '-o', out], capsys, tiny)[0] == 0
    with Image.open(out / 'ga.png') as im:
        assert im.mode == 'LA' and im.size == (200, 160)
        result = np.asarray(im)
    assert abs(int(result[80, -1, 1]) - 255) <= 3 and result[80, 0, 1] <= 3  # the alpha ramp, upscaled


def test_subfolders_are_recursed_and_other_files_named(tiny, tmp_path, capsys):
    src, out = tmp_path / 'in', tmp_path / 'out'
    (src / 'trip' / 'day1').mkdir(parents=True)
    for rel in ('a.png', 'trip/b.jpg', 'trip/day1/c.png'):
        cv2.imwrite(str(src / rel), sample_image('chelsea.png')[:30, :40])
    (src / 'notes.txt').write_text('not an image')
    # hidden names are left out without a word: a Mac's AppleDouble twin and folder file, a thumbnail folder, a
    # prepared folder's record of its sources
    (src / 'trip' / '._b.jpg').write_bytes(b'\x00\x05\x16\x07 AppleDouble')
    (src / '.DS_Store').write_bytes(b'Bud1')
    (src / '.X4.pfdn-sources.json').write_text('{}')
    (src / '.thumbnails').mkdir()
    cv2.imwrite(str(src / '.thumbnails' / 'a.png'), sample_image('chelsea.png')[:20, :20])
    code, stdout, err = infer(['-i', src, '-o', out], capsys, tiny)
    assert code == 0 and '3 upscaled' in stdout
    assert sorted(snapshot(out)) == ['a.png', 'trip/b.jpg', 'trip/day1/c.png']
    assert [line for line in err if line.startswith(('note:', 'error:'))] == [
        next(line for line in err if line.startswith('note: 1 file(s) under'))]
    assert any(line.startswith('note: 1 file(s) under') and 'notes.txt' in line for line in err), err


def test_a_png_with_bytes_after_iend_is_read(tiny, tmp_path, capsys):
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    ok, png = cv2.imencode('.png', sample_image('chelsea.png')[:30, :40])
    (src / 'a.png').write_bytes(png.tobytes() + b'\0' * 200 + b'trailing data a camera app left')
    assert infer(['-i', src, '-o', out], capsys, tiny)[0] == 0 and (out / 'a.png').is_file()


# ------------------------------------------------------------------------------ overrides and options
@pytest.mark.parametrize('entry, value', [('train:optim_g:lr=1e-4', 1e-4), ('train:warmup_iter=-1', -1),
                                          ('train:total_iter=5e3', 5000), ('train:ema_decay=0.999', 0.999)])
def test_overrides_take_the_yml_s_types(photos, tmp_path, entry, value):
    from pfdn_arch.recipe.options import RunOptions
    yml = write_yml(tiny_options('typed', datasets={'train': train_set(photos)}), tmp_path)
    run = RunOptions(yml, True, [entry])
    node = run.opt
    *keys, leaf = entry.split('=')[0].split(':')
    for key in keys:
        node = node[key]
    assert node[leaf] == value and type(node[leaf]) is type(value)


def test_an_override_value_may_hold_an_equals_sign(photos, tmp_path):
    from pfdn_arch.recipe.options import RunOptions
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


def test_auto_resume_after_switching_the_form_is_refused(photos, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opt = tiny_options('form', train={'total_iter': 2}, datasets={'train': train_set(photos)},
                       network_g={'deploy': False},
                       logger={'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False})
    yml = write_yml(opt, tmp_path)
    assert cli(['train', '-opt', yml], capsys)[0] == 0
    before = snapshot(tmp_path / 'experiments')
    code, _, err = cli(['train', '-opt', yml, '--auto_resume', '--force_yml', 'network_g:deploy=true',
                        'train:total_iter=4'], capsys)
    one_error(code, err, 'network_g.deploy', 'deploy: false')
    assert snapshot(tmp_path / 'experiments') == before


@pytest.mark.parametrize('args, flag', [
    (['prepare', 'subimages', '--in', 'x', '--out', 'y', '--step', '0'], '--step'),
    (['prepare', 'subimages', '--in', 'x', '--out', 'y', '--step', '-64'], '--step'),
    (['prepare', 'subimages', '--in', 'x', '--out', 'y', '--crop', '0'], '--crop'),
    (['prepare', 'lmdb', '--gt', 'x', '--lq', 'y', '--gt-lmdb', 'a.lmdb', '--lq-lmdb', 'b.lmdb', '--scale', '0'],
     '--scale'),
    (['export', '--opset', '1'], '--opset'), (['export', '--opset', '7'], '--opset'),
    (['export', '--opset', '99'], '--opset'), (['export', '--name', 'sub/deep'], '--name'),
    (['infer', '-i', 'x', '-o', 'y', '--tile', '-1'], '--tile'),
])
def test_bad_numbers_and_names_on_the_command_line_are_one_line(args, flag, capsys):
    code, _, err = cli(args, capsys)
    one_error(code, err, flag)


def test_export_out_naming_a_file_is_one_line(weights, tmp_path, capsys):
    a_file = tmp_path / 'a_file'
    a_file.write_text('mine')
    code, _, err = cli(['export', '--weights', weights, '--out', a_file], capsys)
    one_error(code, err, a_file, 'is a file')
    assert a_file.read_text() == 'mine'


# ------------------------------------------------------------------------------------ paths and devices
def test_output_paths_that_cannot_work_are_one_line_before_work(tiny, tmp_path, capsys, monkeypatch):
    src = tmp_path / 'a.png'
    cv2.imwrite(str(src), sample_image('chelsea.png')[:30, :40])
    a_file = tmp_path / 'file'
    a_file.write_text('mine')
    broken = tmp_path / 'brokenlink'
    broken.symlink_to(tmp_path / 'nowhere')
    train = tmp_path / 'train.pth'
    torch.save({'params': PFDN(**{k: v for k, v in TINY_NET.items() if k != 'type'}).state_dict()}, train)
    for args, named in ((['-o', a_file / 'sub'], 'is a file'), (['-o', broken], 'broken link'), (['-o', ''], 'empty')):
        code, _, err = infer(['-i', src, *args], capsys, tiny)
        one_error(code, err, named)
    for out, named in ((a_file / 'x.pth', 'is a file'), ('', 'empty')):
        code, _, err = cli(['reparam', '--in', train, '--out', out], capsys)
        one_error(code, err, named)
    # a read-only mount and a full disk (the machine's, simulated: tests run as root, which writes anywhere)
    ro = tmp_path / 'ro'
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, 'access', lambda p, mode: False if str(p).startswith(str(ro)) and mode & os.W_OK
                        else real_access(p, mode))
    code, _, err = infer(['-i', src, '-o', ro / 'out'], capsys, tiny)
    one_error(code, err, ro, 'read-only')
    code, _, err = cli(['reparam', '--in', train, '--out', ro / 'x.pth'], capsys)
    one_error(code, err, 'read-only')
    import shutil
    from collections import namedtuple
    usage = namedtuple('usage', 'total used free')
    monkeypatch.setattr(shutil, 'disk_usage', lambda p: usage(1 << 30, 1 << 30, 0))
    code, _, err = infer(['-i', src, '-o', tmp_path / 'full'], capsys, tiny)
    one_error(code, err, 'not enough room')
    assert a_file.read_text() == 'mine' and not (ro / 'out').exists() and not (tmp_path / 'full').exists()


def test_a_disk_that_fills_up_mid_run_stops_with_one_line_and_keeps_what_was_written(tiny, tmp_path, capsys,
                                                                                     monkeypatch):
    import errno

    import pfdn_arch.files.images as images
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    for name in ('a.png', 'b.png', 'c.png'):
        cv2.imwrite(str(src / name), sample_image('chelsea.png')[:30, :40])
    real, calls = images.write_bytes, []

    def fills_up(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, 'No space left on device')
        return real(path, data)
    monkeypatch.setattr(images, 'write_bytes', fills_up)
    code, _, err = infer(['-i', src, '-o', out], capsys, tiny)
    one_error(code, err, 'b.png', 'disk is full')
    assert sorted(os.listdir(out)) == ['a.png']


def test_inputs_that_are_not_files_are_refused_without_blocking(tiny, tmp_path, capsys):
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    cv2.imwrite(str(src / 'a.png'), sample_image('chelsea.png')[:30, :40])
    os.mkfifo(src / 'b.png')  # a reader would block forever on it
    (src / 'c.png').symlink_to('/dev/zero')  # reads without end
    png_named_txt = tmp_path / 'notes.txt'
    png_named_txt.write_bytes(cv2.imencode('.png', sample_image('chelsea.png')[:30, :40])[1].tobytes())
    code, stdout, err = infer(['-i', src, '-o', out], capsys, tiny)
    assert code == 1 and '1 upscaled' in stdout
    errors = [line for line in err if line.startswith('error: ')]
    assert any('b.png' in e and 'FIFO' in e for e in errors) and any('c.png' in e and 'device' in e for e in errors)
    code, _, err = infer(['-i', png_named_txt, '-o', tmp_path / 'out2'], capsys, tiny)
    one_error(code, err, 'notes.txt', '.txt: not a picture or video format this reads')


# ------------------------------------------------------------------------------------------ checkpoints
def checkpoints(weights, folder):
    released = torch.load(weights, weights_only=True)
    cases = {}

    def save(name, value):
        cases[name] = folder / f'{name}.pth'
        torch.save(value, cases[name])
    save('key_removed', {k: v for k, v in released.items() if k != 'block2.conv3.rep_conv.weight'})
    save('integer_key', {**released, 7: torch.zeros(1)})
    save('sparse', {**released, 'conv_last.bias': released['conv_last.bias'].to_sparse()})
    save('meta', {**released, 'conv_last.bias': torch.empty(48, device='meta')})
    save('int8', {k: (v * 100).to(torch.int8) for k, v in released.items()})
    save('not_pfdn', {'layer.weight': torch.zeros(3, 3)})
    cases['zeros'] = folder / 'zeros.pth'
    cases['zeros'].write_bytes(b'\0' * 4096)
    cases['onnx'] = folder / 'model.onnx'
    cases['onnx'].write_bytes(b'\x08\x07\x12\x07pytorch' + b'\0' * 64)
    return cases


@pytest.mark.parametrize('case, named', [
    ('key_removed', 'block2.conv3.rep_conv.weight'), ('integer_key', 'not a name'), ('sparse', 'conv_last.bias'),
    ('meta', 'meta tensor'), ('int8', 'int8'), ('not_pfdn', 'not a PFDN state dict'),
    ('zeros', 'not a PyTorch checkpoint'), ('onnx', 'ONNX'),
])
def test_checkpoints_that_do_not_fit_are_one_line_naming_what(weights, tmp_path, capsys, case, named):
    path = checkpoints(weights, tmp_path)[case]
    src = tmp_path / 'a.png'
    cv2.imwrite(str(src), sample_image('chelsea.png')[:30, :40])
    for args in (['infer', '-i', src, '-o', tmp_path / 'out', '--weights', path],
                 ['export', '--weights', path, '--out', tmp_path / 'exported']):
        code, _, err = cli(args, capsys)
        line = one_error(code, err, path.name, named)
        assert 'weights_only=False' not in line
    assert not (tmp_path / 'out').exists() and not (tmp_path / 'exported').exists()


def test_reparam_refuses_an_incomplete_or_foreign_training_checkpoint(weights, tmp_path, capsys):
    sd = PFDN().state_dict()
    del sd['block3.conv2.fea_conv.bias']
    incomplete = tmp_path / 'incomplete.pth'
    torch.save({'params': sd}, incomplete)
    code, _, err = cli(['reparam', '--in', incomplete, '--out', tmp_path / 'out.pth'], capsys)
    one_error(code, err, 'block3.conv2', 'fea_conv.bias')
    foreign = checkpoints(weights, tmp_path)['not_pfdn']
    code, _, err = cli(['reparam', '--in', foreign, '--out', tmp_path / 'out.pth'], capsys)
    one_error(code, err, 'not a PFDN state dict')
    assert not (tmp_path / 'out.pth').exists()


def test_a_one_channel_pfdn_is_refused_by_infer_naming_the_checkpoint(tmp_path, capsys):
    grey_net = tmp_path / 'grey.pth'
    torch.save(PFDN(num_in_ch=1, num_out_ch=1, deploy=True).state_dict(), grey_net)
    src = tmp_path / 'a.png'
    cv2.imwrite(str(src), sample_image('chelsea.png')[:30, :40])
    code, _, err = cli(['infer', '-i', src, '-o', tmp_path / 'out', '--weights', grey_net], capsys)
    one_error(code, err, 'grey.pth', '1-channel')


# ------------------------------------------------------------------------------------------------- data
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
    from pfdn_arch.files.samples import write_samples
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


# ----------------------------------------------------------------------------------------------- memory
TILED_MEMORY = '''
import sys, numpy as np, torch
from pfdn_arch import PFDN
from pfdn_arch.deploy.runtime.choose import make_runner
from pfdn_arch.deploy.runtime.upscaler import Upscaler
torch.set_num_threads(1)
net = PFDN(num_feat=8, num_block=1, num_partial_feat=4, esa_channels=4, deploy=True).eval()
up = Upscaler(make_runner(net, 'torch', warn=lambda m: None), tile=64, tile_overlap=8)
img = np.random.default_rng(0).integers(0, 255, (384, 1536, 3), dtype=np.uint8)
up.upscale_image(img[:64, :64])  # warm-up
open('/proc/self/clear_refs', 'w').write('5')
base = int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]) * 1024
out = up.upscale_image(img)
peak = int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) * 1024
print(out.dtype, out.shape, peak - base, out.nbytes)
'''


def test_tiles_bound_memory_to_the_result_in_its_own_dtype_plus_a_band(tmp_path):
    r = subprocess.run([sys.executable, '-c', TILED_MEMORY], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    dtype, *rest = r.stdout.split()
    grown, result = int(rest[-2]), int(rest[-1])
    assert dtype == 'uint8'
    band = 64 * 4 * 1536 * 4 * 3 * 4  # one band of float rows: tile x scale rows of the result
    float_result = result * 4 * 4 // 3  # what accumulating the whole result in float32 (and its weights) takes
    assert grown < result + 2 * band + (64 << 20), (grown, result, band)
    assert grown < float_result, (grown, float_result)


def test_an_image_that_cannot_fit_is_said_before_it_runs(tiny, tmp_path, capsys, monkeypatch):
    import pfdn_arch.deploy.media.images as folder
    src = tmp_path / 'a.png'
    cv2.imwrite(str(src), sample_image('chelsea.png')[:60, :80])
    monkeypatch.setattr(folder, 'available_memory', lambda: 1 << 20)
    code, _, err = infer(['-i', src, '-o', tmp_path / 'out'], capsys, tiny)
    line = one_error(code, err, 'a.png', 'GB to upscale', status=1)
    assert '--tile' in line
    assert not (tmp_path / 'out' / 'a.png').exists()


# --------------------------------------------------------------------------------------------- messages
def test_file_names_with_separators_and_line_breaks_stay_one_line(tiny, tmp_path, capsys):
    src = tmp_path / 'in'
    src.mkdir()
    for name in ('a: b.png', 'line\nbreak.png'):
        (src / name).write_bytes(b'not an image')
    code, _, err = infer(['-i', src, '-o', tmp_path / 'out'], capsys, tiny)
    errors = [line for line in err if line.startswith('error: ')]
    assert code == 1 and len(errors) == 2
    assert any("'" in e and 'a: b.png' in e for e in errors) and any('line\\nbreak.png' in e for e in errors)


def test_the_final_validation_is_logged_at_the_last_iteration(photos, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opt = tiny_options('last', train={'total_iter': 4}, datasets={'train': train_set(photos), 'val': val_set(photos)},
                       val={'val_freq': 4, 'save_img': False,
                            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4}}},
                       logger={'print_freq': 2, 'save_checkpoint_freq': 4, 'use_tb_logger': False})
    assert cli(['train', '-opt', write_yml(opt, tmp_path)], capsys)[0] == 0
    log = ''.join(open(p).read() for p in (tmp_path / 'experiments' / 'last').glob('train_*.log'))
    assert '@ 4 iter' in log and '@ 5 iter' not in log


def test_schedule_headers_show_the_overridden_iterations(photos, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stage = write_yml(tiny_options('overridden', train={'total_iter': 1000}, datasets={'train': train_set(photos)},
                                   logger={'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False}),
                      tmp_path)
    (tmp_path / 'schedule.yml').write_text(yaml.safe_dump({'stages': [stage]}))
    code, out, err = cli(['schedule', '--schedule', tmp_path / 'schedule.yml', '--force_yml', 'train:total_iter=2'],
                         capsys)
    assert code == 0, err[-5:]
    assert '[stage 1/1] overridden: 2 iters' in out and 'all 1 stages finished' in out
