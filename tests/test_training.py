"""Training through BasicSR's pipeline: the README's main job (the smoke schedule), the reparameterization
hand-off, resume after a kill, resuming an NCC stage with its teacher, and fine-tuning the released weights."""
import json
import os
import re
import signal

import pytest
import torch
import yaml

from conftest import (cli, ROOT, run_cli, start_cli, tiny_model, TINY_NET, tiny_options, train_set, train_yml, wait_for,
                      write_yml)
from pfdn_arch import PFDN
from pfdn_arch.evaluation.protocol import evaluate_folder
from pfdn_arch.files.checkpoints import build_from_checkpoint


STAGES = ['smoke_PFDN_x4_s1_lr64', 'smoke_PFDN_x4_s2a_lr128', 'smoke_PFDN_x4_s2b_lr160', 'smoke_PFDN_x4_s2c_lr180',
          'smoke_PFDN_x4_s3_finetune_lr240']


@pytest.mark.slow
def test_the_readme_main_job_runs_every_stage_and_ends_deployed_above_bicubic(tmp_path, weights, capsys,
                                                                            monkeypatch):
    """`basicsr schedule --profile smoke`, as the README's first command runs it, in a fresh working directory (the
    schedule in this process; its stages, as always, in processes of their own)."""
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(['schedule', '--profile', 'smoke'], capsys)
    assert code == 0, out[-3000:] + '\n'.join(err[-30:])
    for i, name in enumerate(STAGES):
        assert re.search(rf'\[stage {i + 1}/5\] {name}: .* elapsed, (ETA \d+m\d\ds|ETA once this stage has run a '
                         'while)', out)
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
    for stage in re.split(r'\n\[stage \d/5\] [^\n]*elapsed[^\n]*\n', out)[1:]:  # each validation and save said once
        progress = [line for line in stage.splitlines() if line.startswith('    iter ')]
        assert progress and len(progress) == len(set(progress)), progress
    scores = re.search(r'\| bicubic \| (\d+\.\d\d) \| 0\.\d{4} \|\n\| PFDN \(smoke_PFDN_x4_s3_finetune_lr240\) \| '
                       r'(\d+\.\d\d) \| 0\.\d{4} \|', out)
    assert scores and float(scores[2]) > float(scores[1]), out[-1500:]  # the README's promise: above bicubic
    report = tmp_path / 'experiments' / 'smoke_schedule_report'
    assert f'report: {report.relative_to(tmp_path)}/psnr.png' in out
    import cv2
    assert cv2.imread(str(report / 'psnr.png')).shape == (420, 960, 3)
    images = len(os.listdir(tmp_path / 'datasets' / 'smoke' / 'val' / 'HR'))
    assert cv2.imread(str(report / 'comparison.png')).shape[0] >= images * (2 * 22 + 8 + 64)  # a row per image
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


@pytest.mark.slow
def test_kill_then_auto_resume_reaches_total_iter(photos, tmp_path):
    yml = train_yml(photos, tmp_path, 'resume_check', total=100000, save_every=5)
    proc = start_cli('train', '-opt', yml, cwd=tmp_path)
    states = tmp_path / 'experiments' / 'resume_check' / 'training_states'
    wait_for(lambda: states.is_dir() and len(list(states.glob('*.state'))) >= 2)
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


@pytest.mark.slow
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
    before = evaluate_folder(build_from_checkpoint(weights)[0].eval(), set5_hr)
    net, _ = build_from_checkpoint(str(tmp_path / 'experiments' / 'finetune_released' / 'models' /
                                            'net_g_deploy_latest.pth'))
    after = evaluate_folder(net.eval(), set5_hr)
    assert abs(after['psnr'] - before['psnr']) <= 0.05, (before, after)
    ema = torch.load(tmp_path / 'experiments' / 'finetune_released' / 'models' / 'net_g_latest.pth',
                     weights_only=True)
    assert set(ema) == {'params', 'params_ema'}


# ----------------------------------------------------------------------------------- the report's pictures, the ETA
def test_the_psnr_plot_lays_stages_end_to_end_at_their_lengths_with_round_ticks():
    from pfdn_arch.evaluation.report import axes, psnr_plot
    stages = [('s1', 500, [(250, 27.12), (500, 28.9)]), ('s2', 40, [(40, 29.31)]), ('s3', 30, [(30, 29.59)])]
    starts, total, y_ticks, x_ticks = axes(stages, bicubic=28.43)
    assert starts == [0, 500, 540, 570] and total == 570
    assert x_ticks == [0, 100, 200, 300, 400, 500] and y_ticks == [27.0, 27.5, 28.0, 28.5, 29.0, 29.5, 30.0]
    assert psnr_plot(stages, 28.43).shape == (420, 960, 3)


def test_comparison_crops_are_scored_as_crops_and_named(photos):
    import cv2
    from basicsr.metrics import calculate_psnr
    from pfdn_arch.files.images import list_images, read_image
    from pfdn_arch.evaluation.protocol import bicubic_lr, bicubic_upscale
    from pfdn_arch.evaluation.report import comparison_strip, crops
    hr, lr = bicubic_lr(read_image(list_images(str(photos['hr']))[0]), 4)
    sr = cv2.GaussianBlur(bicubic_upscale(lr, 4), (3, 3), 0)
    (y, x), size, _, crop, psnr = crops(hr, lr, sr, 4)
    h, w = crop['HR'].shape[:2]
    assert (h, w) == (size, size) and crop['PFDN'].shape == crop['HR'].shape
    assert psnr['PFDN'] == calculate_psnr(sr[y:y + size, x:x + size], hr[y:y + size, x:x + size], 0,
                                          test_y_channel=True)
    whole = calculate_psnr(sr[:hr.shape[0], :hr.shape[1]], hr, 4, test_y_channel=True)
    assert abs(psnr['PFDN'] - whole) > 0.01  # the crop's own figure, not the image's
    strip = comparison_strip(hr, lr, sr, 4, name='photo.png')
    assert strip.shape == (2 * 22 + size, 3 * size + 8, 3)  # a title row naming the image and the place


def test_the_eta_comes_from_the_measured_rate_and_each_stages_fixed_cost():
    from pfdn_arch.schedule.runner import Rates
    from pfdn_arch.schedule.stages import stage_work

    def stage(iters, batch, gt_size):
        return {'train': {'total_iter': iters}, 'scale': 4,
                'datasets': {'train': {'batch_size_per_gpu': batch, 'gt_size': gt_size}}}
    first, later = stage(500, 8, 96), stage(40, 8, 192)
    rates = Rates()
    assert rates.seconds_left([(later, 40)]) is None
    # 500 iterations at 0.2 s each seen between iterations 100 and 500, and 30 s besides (start-up, saves)
    rates.add(first, 500, 500 * 0.2 + 30, [(10.0, 100), (50.0, 300), (90.0, 500)])
    per_iter = stage_work(first) / 500
    assert abs(rates.per_work[0] * per_iter - 0.2) < 1e-9 and abs(rates.fixed[0] - 30) < 1e-9
    # a later stage of 4x the LR pixels a batch: 40 x 0.8 s, and the same 30 s besides
    assert abs(rates.seconds_left([(later, 40), (later, 0)]) - (30 + 40 * 0.8)) < 1e-6


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
