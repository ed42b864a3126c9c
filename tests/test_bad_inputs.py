"""Inputs that cannot be used: malformed, damaged, non-finite or foreign files and arguments each give one error
line naming the file, and nothing is written."""
import os

import cv2
import pytest
import torch
import yaml

from conftest import cli, one_error, ROOT, snapshot, write_yml
from pfdn_arch import PFDN
from pfdn_arch.layout.samples import sample_image


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



@pytest.mark.parametrize('case, names', [
    ('no_hr', ['--hr', '--profile cpu']), ('hr_for_smoke', ['--hr', '--profile smoke']),
    ('hr_missing', ['--hr', 'input folder not found']), ('hr_a_file', ['--hr', 'input folder not found']),
    ('hr_empty', ['--hr', 'no images (png']), ('out_is_users', ['mine.pth', 'not a model basicsr schedule wrote']),
    ('out_is_folder', ['models', 'is a folder']),
])
def test_the_schedules_photos_and_model_file_are_checked_before_any_work(case, names, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    photos = tmp_path / 'photos'
    photos.mkdir()
    cv2.imwrite(str(photos / 'a.png'), sample_image('chelsea.png')[:64, :64])
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'notes.txt').write_text('not a folder')
    (tmp_path / 'mine.pth').write_bytes(b'the user\'s own model')
    (tmp_path / 'models').mkdir()
    args = {'no_hr': ['--profile', 'cpu'], 'hr_for_smoke': ['--profile', 'smoke', '--hr', photos],
            'hr_missing': ['--profile', 'cpu', '--hr', tmp_path / 'nowhere'],
            'hr_a_file': ['--profile', 'cpu', '--hr', tmp_path / 'notes.txt'],
            'hr_empty': ['--profile', 'cpu', '--hr', tmp_path / 'empty'],
            'out_is_users': ['--profile', 'cpu', '--hr', photos, '--out', tmp_path / 'mine.pth'],
            'out_is_folder': ['--profile', 'cpu', '--hr', photos, '--out', tmp_path / 'models']}[case]
    before = snapshot(tmp_path)
    code, _, err = cli(['schedule', *args], capsys)
    one_error(code, err, *names)
    assert snapshot(tmp_path) == before  # nothing prepared, trained or replaced


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


@pytest.fixture
def nan_weights(weights, tmp_path):
    sd = torch.load(weights, weights_only=True)
    sd['block2.conv1.rep_conv.weight'][0, 0, 1, 1] = float('nan')
    path = tmp_path / 'nan.pth'
    torch.save(sd, path)
    return path


def test_nan_weights_are_an_error_everywhere_and_nothing_is_written(nan_weights, data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = tmp_path / 'in.png'
    cv2.imwrite(str(src), sample_image('chelsea.png')[:40, :50])
    train = tmp_path / 'train_nan.pth'
    sd = PFDN().state_dict()
    sd['conv_last.bias'][3] = float('inf')
    torch.save({'params': sd}, train)
    message = 'of its tensors hold NaN or Inf values'
    test_yml = write_yml(dict(yaml.safe_load(open(os.path.join(ROOT, 'options', 'test_pfdn_x4.yml'))), name='nan',
                              datasets={'test_1': {'name': 'Set5', 'type': 'PairedImageDataset', 'dataroot_gt': str(
                                  data['hr']), 'dataroot_lq': str(data['lr']), 'io_backend': {'type': 'disk'}}},
                              path={'pretrain_network_g': str(nan_weights), 'strict_load_g': True}), tmp_path)
    for args in (['test', '-opt', test_yml],['infer', '-i', src, '-o', tmp_path / 'out', '--weights', nan_weights],
                 ['export', '--weights', nan_weights, '--out', tmp_path / 'exported'],
                 ['reparam', '--in', train, '--out', tmp_path / 'deployed.pth'],
                 ['profile', '--weights', nan_weights, '--no-timing']):
        code, _, err = cli(args, capsys)
        assert code == 2 and message in err[-1] and err[-1].startswith('error: '), (args, err)
        assert not any(line.startswith(('Traceback', 'error')) for line in err[:-1]), err
    assert not any((tmp_path / p).exists() for p in ('out', 'exported', 'deployed.pth'))
    assert not (tmp_path / 'results' / 'nan' / 'results.md').exists()  # no score from NaN weights


def test_non_finite_outputs_stop_validation_instead_of_scoring_a_black_image(tmp_path):
    from conftest import tiny_model, uint8_batch
    from pfdn_arch.errors import TrainingDiverged
    model = tiny_model(tmp_path)
    with torch.no_grad():
        model.get_bare_model(model.net_g).conv_last.bias.fill_(3e38)  # finite weights, overflowing output
    data = uint8_batch(0)
    model.feed_data({'lq': data['lq'].float() / 255, 'gt': data['gt'].float() / 255, 'lq_path': ['x/img7.png']})
    model._runner = model.validation_network()
    with pytest.raises(TrainingDiverged, match='NaN or Inf values on img7.png'):
        model.test()


def test_malformed_files_in_a_folder_each_get_one_line_and_the_others_go_through(data, tmp_path, capsys):
    src = tmp_path / 'in'
    src.mkdir()
    good = sample_image('coffee.png')[:40, :50]
    cv2.imwrite(str(src / 'good1.png'), good)
    cv2.imwrite(str(src / 'good2.jpg'), good)
    ok, jpg = cv2.imencode('.jpg', sample_image('astronaut.png'))
    (src / 'cut.jpg').write_bytes(jpg.tobytes()[:len(jpg) // 2])  # OpenCV alone would return a grey bottom third
    import struct
    import zlib

    def chunk(kind, payload):
        return struct.pack('>I', len(payload)) + kind + payload + struct.pack('>I', zlib.crc32(kind + payload))
    (src / 'huge.png').write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 100000, 100000, 8, 2, 0,
                                                                                    0, 0))
                                   + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))
    (src / 'text.png').write_text('not an image')
    before = snapshot(src)
    code, out, err = cli(['infer', '-i', src, '-o', tmp_path / 'out', '--weights', data['tiny'], '--backend',
                          'torch'], capsys)
    assert code == 1 and '2 upscaled x4' in out
    assert sorted(os.listdir(tmp_path / 'out')) == ['.good1.png.pfdn-made.json', '.good2.jpg.pfdn-made.json',
                                                    'good1.png', 'good2.jpg']  # results, and what made them
    assert err[0].startswith('weights: ') and err[1].startswith('backend: ')
    assert err[2:] == [
        f"error: {src / 'cut.jpg'}: the file is truncated (cut short while it was written or copied)",
        f"error: {src / 'huge.png'}: more pixels than OpenCV decodes (1,073,741,824); downscale or split it first",
        f"error: {src / 'text.png'}: unreadable or corrupt image"], err
    assert snapshot(src) == before


def checkpoint_variants(tmp_path):
    sd = PFDN(deploy=True).state_dict()
    missing = {k: v for k, v in sd.items() if not k.startswith('tail')}
    extra = dict(sd, **{'block9.conv1.rep_conv.weight': torch.zeros(1)})
    shape = dict(sd, **{'conv_last.weight': torch.zeros(48, 48, 1, 1)})
    out = {}
    for name, value in (('missing', missing), ('extra', extra), ('shape', shape)):
        out[name] = tmp_path / f'{name}.pth'
        torch.save(value, out[name])
    return out


def test_bad_inputs_and_arguments_each_give_one_error_line(weights, data, tmp_path, capsys, monkeypatch):
    from pfdn_arch import errors
    src = tmp_path / 'in.png'
    cv2.imwrite(str(src), sample_image('chelsea.png')[:40, :50])
    a_file = tmp_path / 'a_file'
    a_file.write_text('mine')
    ckpts = checkpoint_variants(tmp_path)
    folder = tmp_path / 'folder'
    folder.mkdir()
    train_ckpt = tmp_path / 'train.pth'
    torch.save({'params': PFDN().state_dict()}, train_ckpt)
    cases = [
        (['infer', '-i', src, '-o', a_file, '--weights', weights], f'{a_file}: is a file; give a folder'),
        (['infer', '-i', src, '-o', tmp_path / 'o', '--weights', weights, '--device', 'banana'],
         "unknown device 'banana'; use cpu, cuda or cuda:N"),
        (['infer', '-i', src, '-o', tmp_path / 'o', '--weights', ckpts['missing']], 'not a PFDN state dict: missing'),
        (['infer', '-i', src, '-o', tmp_path / 'o', '--weights', ckpts['extra']], 'does not fit this PFDN: keys'),
        (['infer', '-i', src, '-o', tmp_path / 'o', '--weights', ckpts['shape']],
         'keys 1 of another shape (conv_last.weight is (48, 48, 1, 1), the network has (48, 48, 3, 3))'),
        (['reparam', '--in', train_ckpt, '--out', train_ckpt, '--force'], 'is --in itself'),
        (['reparam', '--in', train_ckpt, '--out', folder], 'is a folder; give the file to write'),
    ]
    for args, message in cases:
        code, _, err = cli(args, capsys)
        assert code == 2 and len(err) == 1 and err[0].startswith('error: ') and message in err[0], (args, err)
    assert a_file.read_text() == 'mine' and torch.load(train_ckpt, weights_only=True).keys() == {'params'}
    assert os.listdir(folder) == [] and not (tmp_path / 'o').exists()
    monkeypatch.setattr(errors, 'installed', lambda module: module != 'onnx')  # export without onnx installed
    code, _, err = cli(['export', '--weights', weights, '--out', tmp_path / 'exported'], capsys)
    assert code == 2 and len(err) == 1 and 'needs the onnx package' in err[0] and "pfdn[export]" in err[0]
    assert not (tmp_path / 'exported').exists()  # refused before anything was written


# ------------------------------------------------------------------------------ names, option files, folders
@pytest.mark.parametrize('command', ['train', 'test'])
@pytest.mark.parametrize('name', ['../../escape', 'sub/deep', '..', 'a\\\\b'])
def test_a_run_name_is_one_folder_name(photos, tiny, tmp_path, capsys, monkeypatch, command, name):
    """``name`` is the run's folder under experiments/ or results/: a path there is one line naming the key, and
    nothing is made, inside the working directory or out of it."""
    from conftest import tiny_options, train_set, val_set
    monkeypatch.chdir(tmp_path)
    if command == 'train':
        opt = tiny_options('run', datasets={'train': train_set(photos)})
    else:
        opt = dict(tiny_options('run', network_g={'deploy': True}), datasets={'test_1': val_set(photos)},
                   path={'pretrain_network_g': str(tiny), 'strict_load_g': True}, val={'save_img': False})
    yml = write_yml(opt, tmp_path / 'ymls')
    before = sorted(os.listdir(tmp_path))
    code, _, err = cli([command, '-opt', yml, '--force_yml', f'name={name}'], capsys)
    one_error(code, err, 'name takes a single folder name', f'name={name}')
    assert sorted(os.listdir(tmp_path)) == before and not os.path.exists(os.path.join(tmp_path, '..', 'escape'))


def test_an_option_file_that_is_not_yaml_says_where(tmp_path, capsys):
    yml = tmp_path / 'tabbed.yml'
    yml.write_text('name: x\nmodel_type: PFDNModel\n\tscale: 4\n')
    code, _, err = cli(['train', '-opt', yml], capsys)
    one_error(code, err, 'not valid YAML at line 3, column 1', "found character '\\t' that cannot start any token")


@pytest.mark.parametrize('key', ['pretrain_network_g', 'resume_state'])
def test_a_folder_where_a_checkpoint_goes_says_so(photos, tmp_path, capsys, monkeypatch, key):
    from conftest import tiny_options, train_set
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'models').mkdir()
    yml = write_yml(tiny_options('folder', datasets={'train': train_set(photos)}), tmp_path)
    code, _, err = cli(['train', '-opt', yml, '--force_yml', f'path:{key}={tmp_path / "models"}'], capsys)
    one_error(code, err, f'path.{key}', 'is a folder, not a checkpoint file')
    assert not (tmp_path / 'experiments').exists()


# ------------------------------------------------------------------------------- prepare on a disk that cannot
MOUNTED = '''set -e
mount -t tmpfs -o size={size} tmpfs {where}
{extra}
cd {cwd} && exec {python} -m pfdn_arch.cli prepare df2k --hr {hr} --root {where}/DF2K --workers 1
'''


def _prepare_on_a_small_disk(tmp_path, hr, size, read_only=False):
    """``basicsr prepare df2k`` with its root on a disk of its own of ``size`` (a tmpfs in a mount namespace of the
    test's, read-only on request): (status, stderr, what is left there)."""
    import subprocess
    import sys
    from conftest import ENV
    where = tmp_path / 'disk'
    where.mkdir()
    script = MOUNTED.format(size=size, where=where, python=sys.executable, hr=hr, cwd=tmp_path,
                            extra=f'mount -o remount,ro {where}' if read_only else '') + ''
    listing = f'; ls -aR {where} > {tmp_path}/left.txt'
    r = subprocess.run(['unshare', '-m', 'sh', '-c', script.replace('exec ', '') + listing + '; exit 0'],
                       capture_output=True, text=True, env=ENV, timeout=600)
    return r, (tmp_path / 'left.txt').read_text() if (tmp_path / 'left.txt').exists() else ''


@pytest.fixture(scope='module')
def df2k_hr(tmp_path_factory):
    """Four HR photos (PNG): what ``prepare df2k`` makes of them needs about 10 MB."""
    folder = tmp_path_factory.mktemp('df2k_hr')
    for i, name in enumerate(('astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg')):
        cv2.imwrite(str(folder / f'{i}.png'), sample_image(name))
    return folder


def test_prepare_into_a_root_that_cannot_be_written_is_one_line(tmp_path, df2k_hr):
    r, _ = _prepare_on_a_small_disk(tmp_path, df2k_hr, '64m', read_only=True)
    err = [line for line in r.stderr.splitlines() if line.startswith('error: ')]
    assert len(err) == 1 and 'cannot be written' in err[0] and 'Traceback' not in r.stderr, r.stderr[-2000:]


def test_prepare_says_before_any_work_that_the_disk_has_no_room(tmp_path, df2k_hr):
    r, left = _prepare_on_a_small_disk(tmp_path, df2k_hr, '2m')
    err = [line for line in r.stderr.splitlines() if line.startswith('error: ')]
    assert len(err) == 1 and 'not enough room' in err[0] and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert 'DF2K' not in left  # nothing was made


def test_a_disk_that_fills_up_while_an_lmdb_is_written_stops_in_one_line_and_leaves_no_partial(
        tmp_path, df2k_hr, monkeypatch):
    """Room for the LR images, and a disk that fills up while the LMDB is written (a smaller one than the check
    believed, as another program's writes make it): one line, no ``.partial`` left; the LR images are kept."""
    from pfdn_arch.data import lmdb_store
    from pfdn_arch.data.preparation import prepare_df2k
    from pfdn_arch.errors import DataError
    import lmdb

    def full(*args, **kwargs):
        raise lmdb.Error('mdb_txn_commit: Input/output error')
    monkeypatch.setattr(lmdb_store, '_out_of_room', lambda err, folder: isinstance(err, lmdb.Error))
    real_open = lmdb.open

    class FullDisk:
        def __init__(self, env):
            self.env = env

        def begin(self, write=False, **kwargs):
            if write:
                full()
            return self.env.begin(write=write, **kwargs)

        def __getattr__(self, name):
            return getattr(self.env, name)
    monkeypatch.setattr(lmdb, 'open', lambda *a, **k: FullDisk(real_open(*a, **k)))
    root = tmp_path / 'DF2K'
    with pytest.raises(DataError) as err:
        prepare_df2k([str(df2k_hr)], str(root))
    assert 'the disk filled up while it was written' in err.value.reason and 'unfinished LMDB was removed' in \
        err.value.reason
    assert not [p for p in os.listdir(root) if p.endswith('.partial')]
    assert len(os.listdir(root / 'DF2K_LR_bicubic_X4')) == 4
