"""Training through BasicSR's pipeline: the README's main job (the smoke schedule), the reparameterization
hand-off, resume after a kill, resuming an NCC stage with its teacher, and fine-tuning the released weights."""
import json
import os
import re
import signal
import time

import pytest
import torch
import yaml

from conftest import ROOT, TINY_NET, cli, run_cli, start_cli, tiny_model, tiny_options, train_set, write_yml
from pfdn_arch import PFDN
from pfdn_arch.files.checkpoints import build_pfdn_from_checkpoint
from pfdn_arch.recipe.protocol import evaluate_folder

STAGES = ['smoke_PFDN_x4_s1_lr64', 'smoke_PFDN_x4_s2a_lr128', 'smoke_PFDN_x4_s2b_lr160', 'smoke_PFDN_x4_s2c_lr180',
          'smoke_PFDN_x4_s3_finetune_lr240']


def test_the_readme_main_job_runs_every_stage_and_ends_deployed_above_bicubic(tmp_path, weights, capsys,
                                                                            monkeypatch):
    """`basicsr schedule --profile smoke`, as the README's first command runs it, in a fresh working directory (the
    schedule in this process; its stages, as always, in processes of their own)."""
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(['schedule', '--profile', 'smoke'], capsys)
    assert code == 0, out[-3000:] + '\n'.join(err[-30:])
    for i, name in enumerate(STAGES):
        assert re.search(rf'\[stage {i + 1}/5\] {name}: .* elapsed, (ETA \d+m\d\ds|ETA after the first stage)', out)
        assert f'[stage {i + 1}/5] {name}: done in' in out
        models = tmp_path / 'experiments' / name / 'models'
        assert (models / 'net_g_latest.pth').is_file() and (models / 'net_g_deploy_latest.pth').is_file()
        # every BasicSR save has a deployed twin in the released layout
        saves = sorted(p.name for p in models.glob('net_g_[0-9]*.pth'))
        assert saves and all((models / s.replace('net_g_', 'net_g_deploy_')).is_file() for s in saves)
        history = json.load(open(tmp_path / 'experiments' / name / 'validation.json'))
        assert len(history) >= 4 and all(h['dataset'] == 'val' and h['psnr'] > 20 for h in history)
    released = list(torch.load(weights, weights_only=True))
    final = torch.load(tmp_path / 'experiments' / STAGES[-1] / 'models' / 'net_g_deploy_latest.pth', weights_only=True)
    assert list(final) == released
    # the stages' own logs: the LR-180 step fused stage 2b's training form; the stage-2 steps used NCC
    logs = {name: (tmp_path / 'experiments' / 'smoke_schedule_logs' / f'{name}.log').read_text() for name in STAGES}
    assert 'Reparameterized the training-form checkpoint' in logs[STAGES[3]]
    assert all('NCC loss on layers' in logs[name] for name in STAGES[1:4])
    # progress while a stage runs, read from its files (validations, saved states)
    assert re.search(r'    iter \d+/500: val psnr \d+\.\d\d, ssim 0\.\d{4}', out), out[:3000]
    scores = re.search(r'\| bicubic \| (\d+\.\d\d) \| 0\.\d{4} \|\n\| PFDN \(smoke_PFDN_x4_s3_finetune_lr240\) \| '
                       r'(\d+\.\d\d) \| 0\.\d{4} \|', out)
    assert scores and float(scores[2]) > float(scores[1]), out[-1500:]  # the README's promise: above bicubic
    report = tmp_path / 'experiments' / 'smoke_schedule_report'
    assert f'report: {report.relative_to(tmp_path)}/psnr.png' in out
    import cv2
    assert cv2.imread(str(report / 'psnr.png')).shape == (420, 960, 3)
    assert cv2.imread(str(report / 'comparison.png')).shape[0] == 160 + 22
    # stage 1 trains the RRRB form, the LR-180 step the deployed form
    assert 'expand_conv' in ''.join(torch.load(tmp_path / 'experiments' / STAGES[0] / 'models' / 'net_g_latest.pth',
                                               weights_only=True)['params'])


def test_a_schedule_rerun_skips_finished_stages_and_starts_nothing(photos, tmp_path, capsys, monkeypatch):
    """A stage is finished when its net_g_latest.pth loads: the rerun of a finished schedule starts no process."""
    import subprocess
    monkeypatch.chdir(tmp_path)
    names = ('first', 'second')
    for name in names:
        models = tmp_path / 'experiments' / name / 'models'
        models.mkdir(parents=True)
        torch.save({'params': PFDN(**{k: v for k, v in TINY_NET.items() if k != 'type'}).state_dict()},
                   models / 'net_g_latest.pth')
    stages = [write_yml(tiny_options(name, datasets={'train': train_set(photos)}), tmp_path) for name in names]
    (tmp_path / 'schedule.yml').write_text(yaml.safe_dump({'stages': stages}))
    monkeypatch.setattr(subprocess, 'Popen', lambda *a, **k: pytest.fail('a finished stage was started again'))
    code, out, _ = cli(['schedule', '--schedule', tmp_path / 'schedule.yml'], capsys)
    assert code == 0 and out.count('finished earlier, skipped') == 2 and 'all 2 stages finished' in out


def test_a_deployed_stage_fuses_its_training_form_checkpoint_exactly(tmp_path):
    trained = PFDN(**{k: v for k, v in TINY_NET.items() if k != 'type'})
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    torch.save({'params': trained.state_dict()}, tmp_path / 'stage2b.pth')
    model = tiny_model(tmp_path, network_g={'deploy': True},  # the LR-180 step: one knob, network_g.deploy
                       path={'pretrain_network_g': str(tmp_path / 'stage2b.pth'), 'strict_load_g': True,
                             'resume_state': None})
    assert model.net_g.deploy and 'expand_conv' not in ''.join(model.net_g.state_dict())
    x = torch.rand(2, 3, 32, 27)
    with torch.no_grad():
        assert (model.net_g(x) - trained(x)).abs().max().item() <= 1e-5


def test_kill_then_auto_resume_reaches_total_iter(photos, tmp_path):
    yml = write_yml(tiny_options('resume_check', train={'total_iter': 100000}, datasets={'train': train_set(photos)},
                                 logger={'print_freq': 100, 'save_checkpoint_freq': 5, 'use_tb_logger': False}),
                    tmp_path)
    proc = start_cli('train', '-opt', yml, cwd=tmp_path)
    states = tmp_path / 'experiments' / 'resume_check' / 'training_states'
    deadline = time.time() + 300
    while time.time() < deadline and not (states.is_dir() and len(list(states.glob('*.state'))) >= 2):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group, as a crashed machine would
    proc.wait()
    assert not (tmp_path / 'experiments' / 'resume_check' / 'models' / 'net_g_latest.pth').exists()
    saved = max(int(p.stem) for p in states.glob('*.state'))
    assert saved >= 10
    r = run_cli('train', '-opt', yml, '--auto_resume', '--force_yml', f'train:total_iter={saved + 10}', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    log = ''.join(open(p).read() for p in (tmp_path / 'experiments' / 'resume_check').glob('train_*.log'))
    assert re.search(rf'Resuming training from epoch: \d+, iter: {saved}\.', log)
    assert (states / f'{saved + 10}.state').is_file()  # it went on from there to the end
    assert (tmp_path / 'experiments' / 'resume_check' / 'models' / 'net_g_latest.pth').is_file()
    assert 'results: experiments/resume_check/' in r.stderr


def test_resuming_an_ncc_stage_keeps_its_frozen_teacher(photos, tmp_path, capsys, monkeypatch):
    """Through BasicSR's own path.ignore_resume_networks, as the stage ymls set it."""
    teacher = tmp_path / 'teacher.pth'
    torch.save({'params': PFDN(**{k: v for k, v in TINY_NET.items() if k != 'type'}).state_dict()}, teacher)
    opt = tiny_options('ncc_resume', train={'total_iter': 4, 'ncc_opt': {'type': 'NCCLoss', 'loss_weight': 0.1,
                                                                         'layers': ['block1', 'block2']}},
                       datasets={'train': train_set(photos)}, network_t=dict(TINY_NET),
                       path={'pretrain_network_g': str(teacher), 'pretrain_network_t': str(teacher),
                             'ignore_resume_networks': ['network_t'], 'strict_load_g': True, 'resume_state': None},
                       logger={'print_freq': 2, 'save_checkpoint_freq': 2, 'use_tb_logger': False})
    yml = write_yml(opt, tmp_path)
    with monkeypatch.context() as m:  # the first run in this process; the resumed one as a user runs it
        m.chdir(tmp_path)
        assert cli(['train', '-opt', yml], capsys)[0] == 0
    opt['train']['total_iter'] = 6
    write_yml(opt, tmp_path)
    r = run_cli('train', '-opt', yml, '--auto_resume', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    logs = sorted((tmp_path / 'experiments' / 'ncc_resume').glob('train_*.log'))
    resumed = open(logs[-1]).read()
    assert 'Resuming training from epoch: 0, iter: 4.' in resumed
    assert f'Loading PFDN model from {teacher}' in resumed  # the teacher, not a save of the run
    assert 'net_t_4.pth' not in resumed and 'iter:       6,' in resumed


def test_fine_tuning_the_released_weights_keeps_set5(photos, tmp_path, weights, set5_hr):
    """options/finetune_pfdn_x4_lr240.yml as shipped (L2, lr 1e-5), from the released file, 10 iterations."""
    r = run_cli('train', '-opt', os.path.join(ROOT, 'options', 'finetune_pfdn_x4_lr240.yml'), '--force_yml',
                'name=finetune_released', f'path:pretrain_network_g={weights}', 'train:total_iter=10',
                'train:ema_decay=0.999', 'train:compile=false', 'logger:save_checkpoint_freq=10', 'val:val_freq=100',
                f"datasets:train:dataroot_gt={photos['gt']}", f"datasets:train:dataroot_lq={photos['lq']}",
                'datasets:train:gt_size=128', 'datasets:train:batch_size_per_gpu=2',
                'datasets:train:num_worker_per_gpu=1', f"datasets:val:dataroot_gt={photos['hr']}",
                f"datasets:val:dataroot_lq={photos['lr']}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    before = evaluate_folder(build_pfdn_from_checkpoint(weights)[0].eval(), set5_hr)
    net, _ = build_pfdn_from_checkpoint(str(tmp_path / 'experiments' / 'finetune_released' / 'models' /
                                            'net_g_deploy_latest.pth'))
    after = evaluate_folder(net.eval(), set5_hr)
    assert abs(after['psnr'] - before['psnr']) <= 0.05, (before, after)
    ema = torch.load(tmp_path / 'experiments' / 'finetune_released' / 'models' / 'net_g_latest.pth',
                     weights_only=True)
    assert set(ema) == {'params', 'params_ema'}
