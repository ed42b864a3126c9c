"""Fault injection: kills in the middle of saves, damaged training states and checkpoints, interrupted preparation
and inference, NaN weights, malformed ymls and files. Each case asserts the exit status, the one error line, and
that every file the user had is byte-identical or complete."""
import os
import pickle
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
import yaml

from conftest import (ENV, ROOT, cli, run_cli, snapshot, start_cli, tiny_checkpoint, tiny_options, train_set,
                      write_yml)
from pfdn_arch import PFDN
from pfdn_arch.files.experiment import Experiment
from pfdn_arch.data import preparation as prep
from pfdn_arch.files.samples import sample_image



@pytest.fixture(scope='module')
def data(photos, tmp_path_factory):
    """The shared photos and LMDBs, and a tiny released-layout checkpoint."""
    return dict(photos, tiny=tiny_checkpoint(tmp_path_factory.mktemp('tiny')))


def train_yml(data, folder, name='run', total=4, **train):
    ds = {'train': train_set(data)}
    return write_yml(tiny_options(name, train=dict({'total_iter': total}, **train), datasets=ds,
                                  logger={'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False}), folder)


# ----------------------------------------------------------------------------------------------- atomic saves
KILL_SCRIPT = '''
import sys, torch
from pfdn_arch.files.atomic import save_torch
big = {'big': torch.full((48, 1 << 20), 2.0)}  # 192 MB: a save long enough to be killed in the middle
print('start', flush=True)
save_torch(big, sys.argv[1])
'''


def test_a_kill_at_any_instant_of_a_save_leaves_the_old_file_or_the_new_one(tmp_path):
    target = tmp_path / 'net_g_latest.pth'
    torch.save({'big': torch.ones(4)}, target)
    old = target.read_bytes()
    script = tmp_path / 'save.py'
    script.write_text(KILL_SCRIPT)
    killed_mid_write = 0
    for delay in (0.02, 0.1, 0.25, None):
        proc = subprocess.Popen([sys.executable, str(script), str(target)], env=ENV, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == 'start\n'
        if delay is None:
            assert proc.wait(300) == 0
        else:
            time.sleep(delay)
            writing = any(p.endswith('.tmp') for p in os.listdir(tmp_path))
            proc.kill()
            proc.wait()
        data = target.read_bytes()
        if data == old:
            killed_mid_write += writing
            continue
        # otherwise the new file, complete
        assert torch.equal(torch.load(target, weights_only=True)['big'], torch.full((48, 1 << 20), 2.0))
        old = data
    assert killed_mid_write >= 1, 'no kill landed inside a write'
    assert torch.load(target, weights_only=True)['big'].shape == (48, 1 << 20)
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.tmp')], 'the completed save removed leftovers'


def test_a_folder_is_listed_once_for_leftovers_and_those_of_dead_writers_go(tmp_path, monkeypatch):
    """Writing n files into a folder lists it once, not n times (10,000 results would read 10^8 names); a leftover
    temporary file of a dead process goes when its file is written, a live writer's and other names' stay."""
    from pfdn_arch.files import atomic

    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / f'.a.png.pfdn-{dead}.tmp').write_bytes(b'torn')
    (tmp_path / f'.b.png.pfdn-{dead}.tmp').write_bytes(b'torn')
    (tmp_path / f'.a.png.pfdn-{os.getppid()}.tmp').write_bytes(b'being written')
    (tmp_path / 'mine.tmp').write_bytes(b'not ours')
    listed = []
    real_listdir = os.listdir
    monkeypatch.setattr(atomic.os, 'listdir', lambda folder='.': listed.append(folder) or real_listdir(folder))
    for i in range(50):
        atomic.write_bytes(str(tmp_path / f'{i}.png'), b'x')
    atomic.write_bytes(str(tmp_path / 'a.png'), b'new')
    assert len(listed) == 1
    monkeypatch.setattr(atomic.os, 'listdir', real_listdir)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith('.tmp')) == [
        f'.a.png.pfdn-{os.getppid()}.tmp', f'.b.png.pfdn-{dead}.tmp', 'mine.tmp']
    monkeypatch.setattr(atomic.os, 'listdir', lambda folder='.': listed.append(folder) or real_listdir(folder))
    atomic.write_bytes(str(tmp_path / 'b.png'), b'new')
    assert len(listed) == 1
    assert not (tmp_path / f'.b.png.pfdn-{dead}.tmp').exists()
    assert (tmp_path / 'a.png').read_bytes() == b'new'


def test_a_save_that_dies_half_way_changes_nothing(tmp_path, monkeypatch):
    from conftest import tiny_model, uint8_batch
    model = tiny_model(tmp_path / 'exp')
    model.feed_data(uint8_batch(0))
    model.optimize_parameters(1)
    model.save(0, 2)
    models, states = model.opt['path']['models'], model.opt['path']['training_states']
    before = {**snapshot(models), **snapshot(states)}

    def dies_half_way(obj, f, *args, **kwargs):
        with open(f, 'wb') as out:
            out.write(b'PK\x03\x04 half a zip')
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(torch, 'save', dies_half_way)
    model.optimize_parameters(2)
    for iteration in (2, -1):  # overwriting the same names, and the final 'latest' save
        with pytest.raises(OSError, match='No space left'):
            model.save(0, iteration)
    assert {**snapshot(models), **snapshot(states)} == before  # byte-identical, no temporary files left


# ----------------------------------------------------------------------------------- resume survives damage
def test_auto_resume_sets_damaged_states_aside_and_resumes_from_the_newest_good_one(data, tmp_path, capsys,
                                                                                    monkeypatch):
    yml = train_yml(data, tmp_path, total=4)
    with monkeypatch.context() as m:  # the first run in this process; the resumed one as a user runs it
        m.chdir(tmp_path)
        assert cli(['train', '-opt', yml], capsys)[0] == 0
    exp = tmp_path / 'experiments' / 'run'
    states = exp / 'training_states'
    (states / '4.state').write_bytes((states / '4.state').read_bytes()[:1000])  # torn by a kill (older versions)

    class Evil:
        def __reduce__(self):
            return (os.system, ('touch ' + str(tmp_path / 'pwned'),))
    with open(states / '6.state', 'wb') as f:  # newest of all: a pickle payload
        pickle.dump({'iter': 6, 'evil': Evil()}, f)
    (exp / 'models' / 'net_g_latest.pth').unlink()
    with open(yml) as f:
        opt = yaml.safe_load(f)
    opt['train']['total_iter'] = 6
    with open(yml, 'w') as f:
        yaml.safe_dump(opt, f)
    r = run_cli('train', '-opt', yml, '--auto_resume', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    notes = [line for line in r.stderr.splitlines() if line.startswith('note: ')]
    assert any('6.state is damaged (' in n and 'set aside as 6.state.damaged' in n
               for n in notes), notes
    assert any('4.state is damaged (' in n and 'set aside as 4.state.damaged' in n for n in notes)
    assert not (tmp_path / 'pwned').exists()
    log = ''.join(open(p).read() for p in exp.glob('train_*.log'))
    assert 'Resuming training from epoch: 0, iter: 2.' in log and 'iter:       6,' in log
    assert (states / '4.state.damaged').is_file() and (states / '6.state').is_file()  # the new 6.state
    torch.load(exp / 'models' / 'net_g_latest.pth', weights_only=True)


def test_a_state_whose_checkpoint_is_damaged_is_not_resumed_from(tmp_path):
    exp = tmp_path / 'exp'
    (exp / 'training_states').mkdir(parents=True)
    (exp / 'models').mkdir()
    net = PFDN(num_feat=8, num_partial_feat=4, num_block=1).state_dict()
    for it in (2, 4):
        torch.save({'epoch': 0, 'iter': it, 'optimizers': [], 'schedulers': []}, exp / 'training_states' / f'{it}.state')
        torch.save({'params': net}, exp / 'models' / f'net_g_{it}.pth')
    (exp / 'models' / 'net_g_4.pth').write_bytes(b'')  # a 0-byte checkpoint (a kill before atomic saves)
    path, state = Experiment.at(str(exp)).newest_resumable_state()
    assert state['iter'] == 2 and path.endswith('2.state')
    assert sorted(os.listdir(exp / 'models')) == ['net_g_2.pth', 'net_g_4.pth.damaged']
    assert sorted(os.listdir(exp / 'training_states')) == ['2.state', '4.state.damaged']


def test_a_stage_counts_as_finished_only_if_its_final_checkpoint_loads(tmp_path, monkeypatch, capsys):

    def stage_done(name):
        return Experiment(name).finished()
    monkeypatch.chdir(tmp_path)
    models = tmp_path / 'experiments' / 'stage' / 'models'
    models.mkdir(parents=True)
    assert not stage_done('stage')
    torch.save({'params': PFDN(num_feat=8, num_partial_feat=4, num_block=1).state_dict()}, models / 'net_g_latest.pth')
    assert stage_done('stage')
    (models / 'net_g_latest.pth').write_bytes((models / 'net_g_latest.pth').read_bytes()[:500])
    assert not stage_done('stage')  # so the schedule resumes the stage instead of skipping it
    assert 'net_g_latest.pth is damaged' in capsys.readouterr().err
    assert os.listdir(models) == ['net_g_latest.pth.damaged']


# ----------------------------------------------------------------------------- reruns that really continue
def interrupt_after(monkeypatch, module, name, calls):
    """Make ``module.name`` raise KeyboardInterrupt (Ctrl-C) on its call number ``calls + 1``."""
    real, count = getattr(module, name), [0]

    def wrapper(*args, **kwargs):
        count[0] += 1
        if count[0] > calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(module, name, wrapper)


@pytest.mark.parametrize('step', ['lr', 'subimages', 'benchmark'])
def test_interrupted_preparation_continues_where_it_stopped(data, tmp_path, monkeypatch, capsys, step):
    args = {'lr': ['prepare', 'lr', '--hr', data['hr'], '--out', tmp_path / 'out'],
            'subimages': ['prepare', 'subimages', '--in', data['hr'], '--out', tmp_path / 'out', '--crop', 160,
                          '--step', 120],
            'benchmark': ['prepare', 'benchmark', '--hr', data['hr'], '--name', 'B', '--root', tmp_path / 'out']}[step]
    clean = tmp_path / 'clean'
    with monkeypatch.context() as m:
        m.chdir(tmp_path)
        assert cli([a if a != tmp_path / 'out' else clean for a in args], capsys)[0] == 0
    with monkeypatch.context() as m:
        interrupt_after(m, prep, 'write_image', 2)
        code, _, err = cli(args, capsys)
    assert code == 130 and err[-1] == 'interrupted; rerun the same command to continue where it stopped'
    out = tmp_path / 'out'
    first = {str(f.relative_to(out)): f.stat().st_mtime_ns for f in out.rglob('*.png')}
    assert len(first) == 2
    torn = sorted(out.rglob('*.png'))[0]
    torn.write_bytes(torn.read_bytes()[:200])  # as an older version killed mid-write left it
    assert cli(args, capsys)[0] == 0
    done = {str(f.relative_to(out)): f.read_bytes() for f in out.rglob('*.png')}
    assert done == {str(f.relative_to(clean)): f.read_bytes() for f in clean.rglob('*.png')}  # complete, as a clean run
    kept = [p for p in first if p != str(torn.relative_to(out))]
    assert all((out / p).stat().st_mtime_ns == first[p] for p in kept)  # kept, not redone
    assert not list(out.rglob('*.tmp'))


def test_interrupted_paired_lmdbs_continue_with_the_one_that_is_missing(data, tmp_path, monkeypatch, capsys):
    from pfdn_arch.data import lmdb_store
    monkeypatch.setattr(lmdb_store, 'COMMIT_BYTES', 1)
    gt, lq = tmp_path / 'g.lmdb', tmp_path / 'q.lmdb'
    args = ['prepare', 'lmdb', '--gt', data['hr'], '--lq', data['lr'], '--gt-lmdb', gt, '--lq-lmdb', lq]
    with monkeypatch.context() as m:
        interrupt_after(m, prep, '_read', 4)  # 3 GT images, then the LQ LMDB is interrupted after one
        assert cli(args, capsys)[0] == 130
    assert gt.is_dir() and not lq.is_dir() and (tmp_path / 'q.lmdb.partial').is_dir()
    kept = snapshot(gt)
    code, out, _ = cli(args, capsys)
    assert code == 0 and '3 pairs' in out and snapshot(gt) == kept  # the GT LMDB was kept as it was
    assert prep.read_lmdb_keys(str(lq)) == ['astronaut', 'chelsea', 'coffee']


def test_df2k_preparation_interrupted_anywhere_finishes_on_rerun(data, tmp_path, monkeypatch, capsys):
    args = ['prepare', 'df2k', '--hr', data['hr'], '--root', tmp_path / 'DF2K', '--workers', '1']
    for fn, calls in (('write_image', 1), ('_read', 5)):  # in the LR step, then in the LMDB step
        with monkeypatch.context() as m:
            interrupt_after(m, prep, fn, calls)
            assert cli(args, capsys)[0] == 130
    assert cli(args, capsys)[0] == 0
    assert prep.read_lmdb_keys(str(tmp_path / 'DF2K' / 'DF2K_HR.lmdb')) == ['astronaut', 'chelsea', 'coffee']


def test_infer_rerun_after_an_interruption_continues_and_keeps_no_torn_image(data, tmp_path, monkeypatch, capsys):
    import pfdn_arch.deploy.media.images as folder
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    for name in ('a.png', 'b.png', 'c.png'):
        cv2.imwrite(str(src / name), sample_image('chelsea.png')[:40, :50])
    args = ['infer', '-i', src, '-o', out, '--weights', data['tiny'], '--backend', 'torch']
    with monkeypatch.context() as m:
        interrupt_after(m, folder, 'write_picture', 1)
        code, _, err = cli(args, capsys)
    assert code == 130 and err[-1] == ('interrupted; rerun the same command to continue: finished images and '
                                      'video segments are kept')
    assert sorted(os.listdir(out)) == ['a.png']
    first = (out / 'a.png').read_bytes()
    code, stdout, _ = cli(args, capsys)
    assert code == 0 and '2 upscaled' in stdout and '1 skipped' in stdout and (out / 'a.png').read_bytes() == first
    (out / 'b.png').write_bytes((out / 'b.png').read_bytes()[:300])  # torn (as by an older version), or not ours
    torn = (out / 'b.png').read_bytes()
    code, _, err = cli(args, capsys)
    assert code == 1 and err[-1].startswith(f'error: {out / "b.png"}: exists but is not a complete result')
    assert 'truncated' in err[-1] and '--force' in err[-1]
    assert (out / 'b.png').read_bytes() == torn
    assert cli(args + ['--force'], capsys)[0] == 0 and cv2.imread(str(out / 'b.png')).shape == (160, 200, 3)


# ----------------------------------------------------------------------------------- no silent wrong result
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
    assert sorted(os.listdir(tmp_path / 'out')) == ['good1.png', 'good2.jpg']
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


# ------------------------------------------------------------------------------------------ stopping cleanly
def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f'/proc/{pid}/stat') as f:
        return f.read().split(') ')[1][0] != 'Z'


def stage_pids(marker):
    pids = []
    for pid in os.listdir('/proc'):
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                if marker.encode() in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def test_stopping_schedule_stops_its_running_stage(data, tmp_path):
    """SIGTERM (cleanly, with the continue hint) and SIGKILL (the stage dies with its schedule), both at once."""
    runs = {}
    for how in ('SIGTERM', 'SIGKILL'):
        folder = tmp_path / how
        yml = train_yml(data, folder, f'long_{how}', total=100000)
        (folder / 'schedule.yml').write_text(yaml.safe_dump({'stages': [str(yml)]}))
        runs[how] = (yml, folder, subprocess.Popen(
            [sys.executable, '-m', 'pfdn_arch.cli', 'schedule', '--schedule', str(folder / 'schedule.yml')], cwd=folder,
            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True))
    try:
        for how, (yml, folder, proc) in runs.items():
            deadline = time.time() + 300
            states = folder / 'experiments' / f'long_{how}' / 'training_states'
            while time.time() < deadline and not (states.is_dir() and any(states.iterdir())):
                time.sleep(0.3)
            stage = next(p for p in stage_pids(str(yml)) if p != proc.pid)
            proc.send_signal(getattr(signal, how))
            out, err = proc.communicate(timeout=120)
            deadline = time.time() + 60
            while time.time() < deadline and alive(stage):
                time.sleep(0.2)
            assert not alive(stage), f'{how}: the stage kept training with no schedule waiting for it'
            if how == 'SIGTERM':
                assert proc.returncode == 130
                assert err.strip().splitlines()[-1] == ('interrupted; rerun the same command to continue: finished '
                                                        'stages are skipped, the stopped one resumes')
    finally:
        for _, _, proc in runs.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the test's process groups
            except ProcessLookupError:
                pass


def test_a_swallowed_interrupt_is_raised_again_at_the_next_step(photos):
    """Python drops an exception raised while it runs a finalizer; a stop asked then must still stop the run at the
    next step: the flag the signal handler leaves is checked by every long loop."""
    from pfdn_arch import stopping
    from pfdn_arch.data.preparation import make_lr
    stopping.reset()
    try:
        stopping.request()  # the handler ran; its KeyboardInterrupt was lost
        with pytest.raises(KeyboardInterrupt):
            stopping.check()
        with pytest.raises(KeyboardInterrupt):  # a loop's next step
            make_lr(str(photos['hr']), str(photos['root'] / 'lr_stopped'), 4)
    finally:
        stopping.reset()
    stopping.check()  # nothing pending: nothing raised


def _wait_for(predicate, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and not predicate():
        time.sleep(0.05)
    assert predicate()


def _interrupted_work(command, data, tmp_path):
    """(arguments, progress, finished, children) of one long command: progress counts what the work has written so
    far; children lists the processes of its own that are still running (a schedule's stage)."""
    def count(folder, suffix=''):
        return lambda: len([n for n in os.listdir(folder) if n.endswith(suffix)]) if folder.is_dir() else 0
    if command in ('train', 'schedule'):
        # schedule: one stage; the signal goes to the schedule alone, which must stop its stage itself
        yml = train_yml(data, tmp_path, 'stopped', total=400 if command == 'train' else 200)
        exp = tmp_path / 'experiments' / 'stopped'
        if command == 'train':
            args = ['train', '-opt', yml, '--auto_resume']
        else:
            (tmp_path / 'schedule.yml').write_text(yaml.safe_dump({'stages': [str(yml)]}))
            args = ['schedule', '--schedule', tmp_path / 'schedule.yml']
        children = lambda: [p for p in stage_pids(str(yml)) if alive(p)] if command == 'schedule' else []  # noqa
        return args, count(exp / 'training_states'), lambda: (exp / 'models' / 'net_g_latest.pth').is_file(), children
    if command == 'film':
        from test_video import photo_clip
        clip, out = tmp_path / 'long.mkv', tmp_path / 'up.mkv'
        photo_clip(clip, frames=96, w=128, h=96)  # eight segments of 0.5 s
        args = ['infer', '-i', clip, '-o', out, '--weights', data['tiny'], '--backend', 'torch', '--codec', 'ffv1',
                '--segment', '0.5']
        return args, count(tmp_path / '.up.mkv.pfdn-parts'), out.is_file, list
    out = tmp_path / 'out'
    if command == 'export':  # each format written and checked in turn
        return (['export', '--weights', data['tiny'], '--out', out, '--formats', 'pth', 'safetensors', 'onnx',
                 '--opset', '17'], count(out), lambda: count(out, '.onnx')() == 1 and count(out, '.safetensors')() == 1, list)
    src = tmp_path / 'many'
    src.mkdir()
    image = cv2.imread(str(next(iter(sorted(data['hr'].iterdir())))))
    for i in range(60):
        cv2.imwrite(str(src / f'{i:03d}.png'), np.roll(image[:96, :128], i, 1))
    if command == 'infer':
        args = ['infer', '-i', src, '-o', out, '--weights', data['tiny'], '--backend', 'torch']
    else:
        args = ['prepare', 'lr', '--hr', src, '--out', out, '--scale', '4']
    return args, count(out), lambda: count(out, '.png')() == 60, list


@pytest.mark.slow
@pytest.mark.parametrize('command', ['train', 'schedule', 'infer', 'film', 'prepare', 'export'])
def test_ctrl_c_at_random_instants_stops_every_time_within_seconds_and_the_run_continues(data, tmp_path, command):
    """SIGINT to the command's process alone (no child gets it), at a random instant once its work is under way, three
    times in a row: each time it ends within a few seconds with its one line, and a last run finishes the work."""
    import random
    rng = random.Random(f'{command}-7')
    args, progress, finished, children = _interrupted_work(command, data, tmp_path)
    stopped = 0
    for attempt in range(3):
        before = progress()
        proc = start_cli(*args, cwd=tmp_path, output=True)
        try:  # this run's own work under way (a signal during the interpreter's start-up is Python's to report)
            _wait_for(lambda: progress() > before or proc.poll() is not None)
            if proc.poll() is not None:
                break  # the work is done: nothing left to stop
            time.sleep(rng.uniform(0, 1.5))
            sent = time.time()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
            took = time.time() - sent
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode == 0:
            break  # it finished just before the signal
        assert proc.returncode == 130 and err.strip().splitlines()[-1].startswith('interrupted; '), (attempt, err)
        assert took < 10, (attempt, took)
        _wait_for(lambda: not children(), timeout=30)  # nothing of it keeps running
        stopped += 1
    assert stopped >= 1  # at least one run was really interrupted
    if not finished():  # (an export that completed refuses to run again over its own files)
        proc = start_cli(*args, cwd=tmp_path, output=True)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    assert finished()


def test_schedule_without_its_data_says_so_once_before_starting(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(['schedule'], capsys)
    assert code == 2 and len(err) == 1
    assert 'inputs are not there: datasets/DF2K/DF2K_HR.lmdb' in err[0]
    assert 'basicsr prepare df2k --hr <folders of HR images>' in err[0]
    assert not (tmp_path / 'experiments').exists()
