"""The experiment folder: a failing rerun leaves a trained experiment byte for byte, an archived one is put back,
two runs of one name, resuming (damaged states set aside, a switched form refused), the validation history."""
import os
import pickle
import signal

import pytest
import torch
import yaml

from conftest import (cli, one_error, run_cli, snapshot, start_cli, tiny_options, tiny_state, train_set, train_yml,
                      val_set, wait_for, write_yml)
from pfdn_arch import PFDN
from pfdn_arch.layout.experiment import Experiment


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


@pytest.mark.slow
def test_two_runs_of_one_name_the_second_is_refused_and_the_first_keeps_its_folder(photos, tmp_path):
    yml = train_yml(photos, tmp_path, 'same', total=100000)
    first = start_cli('train', '-opt', yml, cwd=tmp_path)
    try:
        states = tmp_path / 'experiments' / 'same' / 'training_states'
        wait_for(lambda: states.is_dir() and any(states.iterdir()))
        second = run_cli('train', '-opt', yml, cwd=tmp_path, timeout=300)
        assert second.returncode == 2
        assert 'experiments/same: is in use by another run (process' in second.stderr.strip().splitlines()[-1]
        assert sorted(os.listdir(tmp_path / 'experiments')) == ['.same.pfdn-lock', 'same']  # nothing archived
        assert first.poll() is None  # the first trains on, in its own folder
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()


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


def test_the_final_validation_is_logged_at_the_last_iteration(photos, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opt = tiny_options('last', train={'total_iter': 4}, datasets={'train': train_set(photos), 'val': val_set(photos)},
                       val={'val_freq': 4, 'save_img': False,
                            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4}}},
                       logger={'print_freq': 2, 'save_checkpoint_freq': 4, 'use_tb_logger': False})
    assert cli(['train', '-opt', write_yml(opt, tmp_path)], capsys)[0] == 0
    log = ''.join(open(p).read() for p in (tmp_path / 'experiments' / 'last').glob('train_*.log'))
    assert '@ 4 iter' in log and '@ 5 iter' not in log


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


def test_each_validation_is_recorded_once_in_order_and_a_rerun_replaces_its_own(tmp_path):
    """What PFDNModel records at each validation (``add_validation``): two sets every 2 iterations, a stop, a resumed
    run that validates iteration 4 again (replaced, not doubled), a test run's rows without an iteration; the file
    whole after each write."""
    from pfdn_arch.layout.experiment import add_validation, read_history

    for it, psnr in ((2, 1.0), (4, 2.0), (4, 2.5), (6, 3.0)):
        for dataset in ('B', 'A'):
            add_validation(str(tmp_path), it, dataset, {'psnr': psnr, 'ssim': 0.5})
    got = [(e['iter'], e['dataset'], e['psnr']) for e in read_history(str(tmp_path / 'validation.json'))]
    assert got == [(2, 'A', 1.0), (2, 'B', 1.0), (4, 'A', 2.5), (4, 'B', 2.5), (6, 'A', 3.0), (6, 'B', 3.0)]
    add_validation(str(tmp_path / 'results'), None, 'Set5', {'psnr': 32.0437})
    assert read_history(str(tmp_path / 'results' / 'validation.json')) == [{'iter': None, 'dataset': 'Set5',
                                                                          'psnr': 32.0437}]


def test_the_cpu_profiles_runs_on_other_photos_are_set_aside_never_deleted(tmp_path, monkeypatch, capsys):
    from pfdn_arch.cli.schedule import set_aside_other_photos_runs

    monkeypatch.chdir(tmp_path)
    import time
    monkeypatch.setattr(time, 'strftime', lambda fmt: '20261207_120000')  # every set-aside in one second
    photos = []
    for name in ('a.png', 'b.png'):
        photos.append(tmp_path / name)
        photos[-1].write_bytes(name.encode())
    run = tmp_path / 'experiments' / 'cpu_stage1'
    run.mkdir(parents=True)
    (run / 'trained.txt').write_text('hours of work')
    set_aside_other_photos_runs(['cpu_stage1'], photos, '')  # no record of earlier photos: doubt, set aside
    archived = [p for p in os.listdir(tmp_path / 'experiments') if p.startswith('cpu_stage1_archived_')]
    assert len(archived) == 1 and not run.exists()
    assert (tmp_path / 'experiments' / archived[0] / 'trained.txt').read_text() == 'hours of work'
    run.mkdir()
    set_aside_other_photos_runs(['cpu_stage1'], photos, '')  # the same photos: the run stays to be resumed
    assert run.is_dir() and len(os.listdir(tmp_path / 'experiments')) == 3
    photos[1].write_bytes(b'edited')  # one photo changed: what was trained on the old ones is set aside too, beside
    set_aside_other_photos_runs(['cpu_stage1'], photos, '')  # the first archive (same second), not onto it
    assert not run.exists()
    assert sorted(p for p in os.listdir(tmp_path / 'experiments') if p.startswith('cpu_stage1_archived_')) == [
        'cpu_stage1_archived_20261207_120000', 'cpu_stage1_archived_20261207_120000_2']
