"""Training through BasicSR's pipeline: the smoke schedule, the reparameterization hand-off, resume after a
kill, fine-tuning the released weights, DDP on CPU, and the model's safety options."""
import glob
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from basicsr.models import build_model
from basicsr.utils.options import parse_options
from conftest import ROOT, run_cli
from pfdn_arch import PFDN
from pfdn_arch.checkpoint import build_pfdn_from_checkpoint
from pfdn_arch.evaluate import evaluate_folder

STAGES = ['smoke_PFDN_x4_s1_lr64', 'smoke_PFDN_x4_s2a_lr128', 'smoke_PFDN_x4_s2b_lr160', 'smoke_PFDN_x4_s2c_lr180',
          'smoke_PFDN_x4_s3_finetune_lr240']


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    """Run the README's main job once (the whole smoke schedule) in a fresh working directory."""
    work = tmp_path_factory.mktemp('smoke')
    r = run_cli('schedule', '--profile', 'smoke', cwd=work)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return work, r.stdout


def parse_opt(path, root, is_train=True):
    argv, sys.argv = sys.argv, ['basicsr', '-opt', str(path)]
    try:
        opt, _ = parse_options(str(root), is_train)
    finally:
        sys.argv = argv
    opt['root_path'] = str(root)
    return opt


def stage_yml(work, name):
    return next(p for p in glob.glob(str(work / 'experiments' / 'smoke_schedule_options' / '*.yml'))
                if yaml.safe_load(open(p))['name'] == name)


def derived_yml(work, base_name, name, **train_overrides):
    """A copy of a smoke stage yml with a new name and overrides (dotted keys)."""
    opt = yaml.safe_load(open(stage_yml(work, base_name)))
    opt['name'] = name
    for key, value in train_overrides.items():
        node = opt
        *parents, leaf = key.split('.')
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = value
    path = work / f'{name}.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def test_smoke_schedule_runs_every_stage_and_ends_deployed(smoke, weights):
    work, out = smoke
    for i, name in enumerate(STAGES):
        assert f'[stage {i + 1}/5] {name}: done' in out
        models = work / 'experiments' / name / 'models'
        assert (models / 'net_g_latest.pth').is_file() and (models / 'net_g_deploy_latest.pth').is_file()
        # every BasicSR save has a deployed twin in the released layout
        saves = sorted(p.name for p in models.glob('net_g_[0-9]*.pth'))
        assert saves and all((models / s.replace('net_g_', 'net_g_deploy_')).is_file() for s in saves)
    released = list(torch.load(weights, weights_only=True))
    final = torch.load(work / 'experiments' / STAGES[-1] / 'models' / 'net_g_deploy_latest.pth', weights_only=True)
    assert list(final) == released
    assert 'reparameterized at start' in out and 'NCC loss on layers' in out
    assert re.search(r'\| PFDN \(smoke_PFDN_x4_s3_finetune_lr240\) \| \d+\.\d\d \| 0\.\d{4} \|', out)
    # stage 1 trains the RRRB form, the LR-180 step the deployed form
    assert 'expand_conv' in ''.join(torch.load(work / 'experiments' / STAGES[0] / 'models' / 'net_g_latest.pth',
                                               weights_only=True)['params'])
    # running it again skips every finished stage
    again = run_cli('schedule', '--profile', 'smoke', cwd=work)
    assert again.returncode == 0 and again.stdout.count('finished earlier, skipped') == 5


def test_reparameterization_hand_off_is_exact(smoke, monkeypatch):
    work, _ = smoke
    monkeypatch.chdir(work)
    trained = PFDN()
    trained.load_state_dict(torch.load(work / 'experiments' / STAGES[2] / 'models' / 'net_g_latest.pth',
                                       weights_only=True)['params'])
    opt = parse_opt(stage_yml(work, STAGES[3]), work)
    model = build_model(opt)  # loads the stage-2b training-form checkpoint and fuses it
    assert model.net_g.deploy and opt['train']['reparameterize_on_start']
    x = torch.rand(2, 3, 32, 27)
    with torch.no_grad():
        first = model.net_g(x)
        last = trained(x)
    assert (first - last).abs().max().item() <= 1e-5


def test_kill_then_auto_resume_reaches_total_iter(smoke):
    work, _ = smoke
    yml = derived_yml(work, STAGES[0], 'resume_check', **{'train.total_iter': 400, 'logger.save_checkpoint_freq': 25,
                                                          'logger.print_freq': 100,
                                                          'val.val_freq': 10000})
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, '-m', 'pfdn_arch.cli', 'train', '-opt', str(yml)], cwd=work, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    states = work / 'experiments' / 'resume_check' / 'training_states'
    deadline = time.time() + 300
    while time.time() < deadline and not (states.is_dir() and any(states.glob('*.state'))):
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group, as a crashed machine would
    proc.wait()
    assert not (work / 'experiments' / 'resume_check' / 'models' / 'net_g_latest.pth').exists()
    saved = max(int(p.stem) for p in states.glob('*.state'))
    assert 0 < saved < 400
    r = run_cli('train', '-opt', str(yml), '--auto_resume', cwd=work)
    assert r.returncode == 0, r.stderr[-2000:]
    log = ''.join(open(p).read() for p in (work / 'experiments' / 'resume_check').glob('train_*.log'))
    assert re.search(rf'Resuming training from epoch: \d+, iter: {saved}\.', log)
    assert 'iter:     400,' in log
    assert (work / 'experiments' / 'resume_check' / 'models' / 'net_g_latest.pth').is_file()


def test_fine_tuning_the_released_weights_keeps_set5(smoke, weights, set5_hr):
    work, _ = smoke
    yml = derived_yml(work, STAGES[4], 'finetune_released', **{
        'path.pretrain_network_g': os.path.abspath(weights), 'path.param_key_g': 'params', 'train.total_iter': 10,
        'train.ema_decay': 0.999, 'logger.save_checkpoint_freq': 10, 'val.val_freq': 10000,
        'datasets.train.gt_size': 128})
    r = run_cli('train', '-opt', str(yml), cwd=work)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'MSELoss' in open(yml).read()
    before = evaluate_folder(build_pfdn_from_checkpoint(weights)[0].eval(), set5_hr)
    net, _ = build_pfdn_from_checkpoint(str(work / 'experiments' / 'finetune_released' / 'models' /
                                            'net_g_deploy_latest.pth'))
    after = evaluate_folder(net.eval(), set5_hr)
    assert abs(after['psnr'] - before['psnr']) <= 0.05, (before, after)
    ema = torch.load(work / 'experiments' / 'finetune_released' / 'models' / 'net_g_latest.pth', weights_only=True)
    assert set(ema) == {'params', 'params_ema'}


def test_ddp_two_processes_on_cpu_agree(smoke):
    work, _ = smoke
    yml = derived_yml(work, STAGES[1], 'ddp_check', **{'train.total_iter': 6, 'logger.save_checkpoint_freq': 6,
                                                       'val.val_freq': 10000, 'datasets.train.batch_size_per_gpu': 2})
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_port=29533',
                        os.path.join(ROOT, 'tests', 'ddp_worker.py'), '-opt', str(yml), '--launcher', 'pytorch'],
                       cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    models = work / 'experiments' / 'ddp_check' / 'models'
    a = torch.load(models / 'rank0_6.pth', weights_only=True)
    b = torch.load(models / 'rank1_6.pth', weights_only=True)
    start = torch.load(work / 'experiments' / STAGES[0] / 'models' / 'net_g_latest.pth', weights_only=True)['params']
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], start[k]) for k in a)  # they trained, and identically
    log = ''.join(open(p).read() for p in (work / 'experiments' / 'ddp_check').glob('train_*.log'))
    assert 'World size (gpu number): 2' in log


def _model(work, monkeypatch, **overrides):
    monkeypatch.chdir(work)
    opt = parse_opt(derived_yml(work, STAGES[0], 'unit', **overrides), work)
    return build_model(opt)


def _batch(gt=64):
    gt_img = torch.rand(2, 3, gt, gt)
    return {'lq': torch.nn.functional.avg_pool2d(gt_img, 4), 'gt': gt_img}


def test_adamw_and_gradient_clipping(smoke, monkeypatch):
    work, _ = smoke
    model = _model(work, monkeypatch, **{'train.optim_g': {'type': 'AdamW', 'lr': 1e-4, 'weight_decay': 0.01},
                                         'train.grad_clip_norm': 1e-3})
    assert isinstance(model.optimizer_g, torch.optim.AdamW)
    model.feed_data(_batch())
    model.optimize_parameters(1)
    norm = torch.norm(torch.stack([p.grad.norm() for p in model.net_g.parameters()]))
    assert norm.item() <= 1e-3 * 1.0001


def test_ncc_without_teacher_compares_sr_with_gt(smoke, monkeypatch):
    work, _ = smoke
    model = _model(work, monkeypatch, **{'train.ncc_opt': {'type': 'NCCLoss', 'loss_weight': 0.5}})
    assert model.net_t is None
    model.feed_data(_batch())
    model.optimize_parameters(1)
    assert set(model.get_current_log()) == {'l_pix', 'l_ncc'} and model.get_current_log()['l_ncc'] > 0
