"""BasicSR's own entry points run PFDN with no import in user code: `python -m basicsr.train|test`, a project's
train.py in either import order, a BasicSR checkout's basicsr/train.py run as a script, BasicSR's LMDB maker with its
stock dataset, its stock SRModel with our arch and loss (also under torchrun with workers), and the checks that turn
what BasicSR would throw on a yml into one error line."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import numpy as np
import pytest
import torch
import yaml

from conftest import cli, ENV, Probes, ROOT, run_group, TINY_NET, tiny_options, train_set, val_set, write_yml
from pfdn_arch import PFDN


PY = [sys.executable]


def python(*args, cwd, env=None, timeout=600):
    return run_group(PY + [str(a) for a in args], cwd=cwd, env=dict(ENV, **(env or {})), timeout=timeout)


def tiny_pfdn_state():
    return PFDN(**{k: v for k, v in TINY_NET.items() if k != 'type'}).state_dict()


def log_of(folder):
    return ''.join(open(p).read() for p in sorted(folder.glob('*.log')))


REGISTERED = ('import sys; import basicsr; from basicsr.utils.registry import ARCH_REGISTRY as A, MODEL_REGISTRY as M, '
              'DATASET_REGISTRY as D, LOSS_REGISTRY as L\n'
              'print([r.get(n).__module__ for r, n in ((A, "PFDN"), (M, "PFDNModel"), (D, "PairedCropDataset"), '
              '(L, "NCCLoss"))])')
USER_PFDN = textwrap.dedent('''
    import torch
    from basicsr.utils.registry import ARCH_REGISTRY, Registry
    from pfdn_arch.plugin.registry import add
    from pfdn_arch import PFDN

    @ARCH_REGISTRY.register()
    class PFDN(torch.nn.Module):  # noqa: F811  the user's own, after ours
        pass
    print('later:', ARCH_REGISTRY.get('PFDN').__module__)

    mine = Registry('arch')
    mine.register(PFDN)  # theirs first
    from pfdn_arch.archs import PFDN as Ours
    add(mine, Ours)
    print('earlier:', mine.get('PFDN').__module__)
''')
PROJECT_TRAIN = {
    # Real-ESRGAN's order: BasicSR's pipeline first, then the plugin
    'basicsr_first': '''
        import os.path as osp
        from basicsr.train import train_pipeline
        import pfdn_arch  # noqa: F401
        if __name__ == '__main__':
            train_pipeline(osp.abspath(osp.dirname(__file__)))
    ''',
    'plugin_first': '''
        import os.path as osp
        import pfdn_arch  # noqa: F401
        from basicsr.train import train_pipeline
        if __name__ == '__main__':
            train_pipeline(osp.abspath(osp.dirname(__file__)))
    ''',
}


@pytest.fixture(scope='module')
def probes(photos, tmp_path_factory):
    """This module's short interpreter-level checks, started together (their start-ups overlap)."""
    p = Probes()
    p.start('hook on', REGISTERED)
    p.start('hook off', 'import basicsr', {'PFDN_BASICSR_HOOK': '0'})
    p.start('user PFDN', USER_PFDN)
    for order, code in PROJECT_TRAIN.items():
        project = tmp_path_factory.mktemp(order)
        (project / 'train.py').write_text(textwrap.dedent(code))
        yml = write_yml(tiny_options(f'project_{order}', train={'total_iter': 2}, datasets={'train': train_set(photos)},
                                     logger={'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False}),
                        project)
        p.start(order, 'import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name="__main__")',
                args=[project / 'train.py', '-opt', yml])
        p.procs[order].project = project
    return p


@pytest.mark.slow
def test_the_start_up_hook_is_installed_and_can_be_turned_off(probes):
    code, out, err = probes.result('hook on')
    assert code == 0, err[-2000:]
    assert out.strip() == ("['pfdn_arch.archs.pfdn.pfdn_arch', 'pfdn_arch.models.pfdn_model', "
                           "'pfdn_arch.data.paired_crop_dataset', 'pfdn_arch.losses.ncc_loss']")
    code, _, err = probes.result('hook off')
    # without the hook, PyPI's basicsr 1.4.2 does not even import on this stack: the reason the hook exists
    assert code != 0 and 'functional_tensor' in err
    import site
    pth = [os.path.join(d, 'pfdn-basicsr-hook.pth') for d in site.getsitepackages()]
    assert any(os.path.isfile(p) for p in pth), pth


def test_python_m_basicsr_train_trains_under_the_working_directory(photos, tmp_path):
    yml = write_yml(tiny_options('m_train', train={'total_iter': 4}, datasets={'train': train_set(photos),
                                                                                 'val': val_set(photos)},
                                 val={'val_freq': 4, 'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4}}},
                                 logger={'print_freq': 2, 'save_checkpoint_freq': 4, 'use_tb_logger': False}),
                    tmp_path)
    r = python('-m', 'basicsr.train', '-opt', yml, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'm_train'
    assert (exp / 'models' / 'net_g_latest.pth').is_file() and (exp / 'models' / 'net_g_deploy_latest.pth').is_file()
    assert 'iter:       4,' in log_of(exp)
    import basicsr
    assert not os.path.exists(os.path.join(os.path.dirname(os.path.dirname(basicsr.__file__)), 'experiments', 'm_train'))
    assert 'found in sys.modules' not in r.stderr  # runpy's warning is about a double import that does not happen
    assert [h['iter'] for h in yaml.safe_load(open(exp / 'validation.json'))] == [4]  # validated twice: once


def test_python_m_basicsr_test_reproduces_set5(set5_hr, weights, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli(['prepare', 'benchmark', '--hr', set5_hr, '--name', 'Set5'], capsys)[0] == 0
    r = python('-m', 'basicsr.test', '-opt', os.path.join(ROOT, 'options', 'test_pfdn_x4.yml'), '--force_yml',
               f'path:pretrain_network_g={weights}', 'datasets:test_2:name=Set5_again', 'val:backend=torch',
               f'datasets:test_2:dataroot_gt={tmp_path}/datasets/benchmark/Set5/HR',
               f'datasets:test_2:dataroot_lq={tmp_path}/datasets/benchmark/Set5/LR_bicubic/X4', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    table = (tmp_path / 'results' / 'PFDN_x4_released' / 'results.md').read_text()
    assert re.search(r'\| Set5 \| 32\.04\d\d \| 0\.893\d \|', table), table


@pytest.mark.slow
@pytest.mark.parametrize('order', list(PROJECT_TRAIN))
def test_a_projects_train_py_works_in_either_import_order(probes, order):
    code, _, err = probes.result(order)
    assert code == 0, err[-3000:]
    project = probes.procs[order].project
    assert (project / 'experiments' / f'project_{order}' / 'models' / 'net_g_latest.pth').is_file()  # root: the project


@pytest.mark.slow
def test_a_basicsr_checkouts_train_py_runs_and_resumes_on_the_cpu(photos, tmp_path):
    """`python basicsr/train.py` from a checkout (here a copy of the installed package), where the script defines
    its own CUDA-only load_resume_state: a stopped run resumes with --auto_resume."""
    import basicsr
    checkout = tmp_path / 'BasicSR'
    shutil.copytree(os.path.dirname(basicsr.__file__), checkout / 'basicsr',
                    ignore=shutil.ignore_patterns('__pycache__'))
    opt = tiny_options('checkout', train={'total_iter': 2}, datasets={'train': train_set(photos)},
                       logger={'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False})
    yml = write_yml(opt, checkout / 'options')
    env = {'PYTHONPATH': f'{checkout}{os.pathsep}{ENV["PYTHONPATH"]}'}
    assert python('basicsr/train.py', '-opt', yml, cwd=checkout, env=env).returncode == 0
    opt['train']['total_iter'] = 4
    write_yml(opt, checkout / 'options')
    r = python('basicsr/train.py', '-opt', yml, '--auto_resume', cwd=checkout, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    exp = checkout / 'experiments' / 'checkout'  # BasicSR's own root for a checkout: the checkout
    assert 'Resuming training from epoch: 0, iter: 2.' in log_of(exp) and (exp / 'training_states' / '4.state').is_file()


@pytest.mark.slow
def test_basicsrs_lmdb_maker_stock_dataset_and_srmodel_with_pfdn_and_ncc(photos, tmp_path):
    """BasicSR's own make_lmdb_from_imgs (what its scripts/data_preparation/create_lmdb.py calls), read by its stock
    PairedImageDataset, trained by its stock SRModel on our PFDN with our NCCLoss, tested by `basicsr test`."""
    import cv2
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs
    hr = tmp_path / 'hr'  # GT cropped to 4x its LR, as BasicSR's scripts expect of their input
    hr.mkdir()
    for path in photos['hr'].glob('*.png'):
        img = cv2.imread(str(path))
        cv2.imwrite(str(hr / path.name), img[:img.shape[0] // 4 * 4, :img.shape[1] // 4 * 4])
    gt, lq = tmp_path / 'gt.lmdb', tmp_path / 'lq.lmdb'
    for folder, out in ((hr, gt), (photos['lr'], lq)):
        names = sorted(p.name for p in folder.glob('*.png'))
        make_lmdb_from_imgs(str(folder), str(out), names, [os.path.splitext(n)[0] for n in names])
    dataset = dict(train_set(photos), type='PairedImageDataset', dataroot_gt=str(gt), dataroot_lq=str(lq),
                   io_backend={'type': 'lmdb'})
    del dataset['uint8_batches']
    opt = tiny_options('srmodel', model_type='SRModel', train={'total_iter': 2, 'pixel_opt': {'type': 'NCCLoss',
                                                                                             'loss_weight': 1.0}},
                       datasets={'train': dataset, 'val': val_set(photos)},
                       val={'val_freq': 2, 'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4}}},
                       logger={'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False})
    r = python('-m', 'basicsr.train', '-opt', write_yml(opt, tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'srmodel'
    log = log_of(exp)
    assert 'Model [SRModel] is created.' in log and 'Loss [NCCLoss] is created.' in log and 'l_pix:' in log
    saved = torch.load(exp / 'models' / 'net_g_latest.pth', weights_only=True)['params']
    assert 'block1.conv1.expand_conv.weight' in saved  # BasicSR's own save of our training form
    test = dict(tiny_options('srmodel_test', model_type='SRModel'), datasets={'test_1': val_set(photos)},
                path={'pretrain_network_g': str(exp / 'models' / 'net_g_latest.pth'), 'strict_load_g': True},
                val={'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4}}})
    r = python('-m', 'basicsr.test', '-opt', write_yml(test, tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    # BasicSR's own model: its figures in BasicSR's log, as BasicSR writes them; the tables are PFDNModel's
    assert re.search(r'Validation val\n\t # psnr: \d+\.\d{4}', log_of(tmp_path / 'results' / 'srmodel_test'))
    assert not (tmp_path / 'results' / 'srmodel_test' / 'results.md').exists()
    assert r.stderr.strip().splitlines()[-1] == ('results: results/srmodel_test/ (the log; the model recorded no '
                                                 'metrics to tabulate)')


@pytest.mark.slow
def test_torchrun_srmodel_two_processes_with_two_workers_each(photos, tmp_path):
    """`torchrun --nproc_per_node=2 -m basicsr.train ... --launcher pytorch` with BasicSR's stock SRModel and 2
    DataLoader workers per process: on CPUs (gloo), through the same compatibility layer as PFDNModel."""
    opt = tiny_options('ddp_srmodel', model_type='SRModel', train={'total_iter': 4},
                       datasets={'train': train_set(photos, workers=2, persistent_workers=True, uint8_batches=False)},
                       logger={'print_freq': 2, 'save_checkpoint_freq': 4, 'use_tb_logger': False},
                       dist_params={'backend': 'gloo', 'port': 29543})
    r = python('-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_port=29543', '-m', 'basicsr.train',
               '-opt', write_yml(opt, tmp_path), '--launcher', 'pytorch', cwd=tmp_path, env={'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'ddp_srmodel'
    log = log_of(exp)
    assert 'World size (gpu number): 2' in log and 'iter:       4,' in log and 'Model [SRModel] is created.' in log
    assert 'Network: DistributedDataParallel - PFDN' in log  # wrapped for gloo, without CUDA device ids
    assert (exp / 'models' / 'net_g_latest.pth').is_file()


def test_pfdnmodel_trains_other_archs_without_deployed_saves(photos, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    msr = {'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1, 'upscale': 4}
    opt = tiny_options('msr', train={'total_iter': 2}, datasets={'train': train_set(photos), 'val': val_set(photos)},
                       val={'val_freq': 2, 'save_img': False, 'backend': 'openvino',
                            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4}}},
                       logger={'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False})
    opt['network_g'] = msr
    code, _, err = cli(['train', '-opt', write_yml(opt, tmp_path)], capsys)
    assert code == 0, err[-20:]
    models = sorted(os.listdir(tmp_path / 'experiments' / 'msr' / 'models'))
    assert models == ['net_g_2.pth', 'net_g_latest.pth']
    log = log_of(tmp_path / 'experiments' / 'msr')
    assert log.count('MSRResNet has no reparameterize()') == 1 and '# psnr:' in log
    # NCC against a teacher without layers named, for a network with no default ones: refused before the first
    # iteration; then layers the network does not have
    opt.update(name='msr_ncc', network_t=msr)
    opt['path'].update(pretrain_network_t=str(tmp_path / 'experiments' / 'msr' / 'models' / 'net_g_latest.pth'))
    opt['train']['ncc_opt'] = {'type': 'NCCLoss', 'loss_weight': 0.1}
    code, _, err = cli(['train', '-opt', write_yml(opt, tmp_path)], capsys)
    assert code == 2 and err[-1].startswith('error: train.ncc_opt.layers: name the layers of MSRResNet')
    assert not (tmp_path / 'experiments' / 'msr_ncc').exists()  # the run failed before saving: nothing left behind
    opt['train']['ncc_opt']['layers'] = ['block1']
    code, _, err = cli(['train', '-opt', write_yml(opt, tmp_path)], capsys)
    assert code == 2 and err[-1].startswith('error: ') and "has no module named 'block1'" in err[-1]


def test_what_basicsr_would_throw_is_one_error_line_before_anything_is_written(photos, weights, tmp_path, capsys,
                                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    bare = tmp_path / 'bare.pth'
    torch.save(tiny_pfdn_state(), bare)
    base = tiny_options('checked', datasets={'train': train_set(photos)})

    def variant(change):
        opt = yaml.safe_load(yaml.safe_dump(base))
        change(opt)
        return write_yml(dict(opt, name=f'checked{len(os.listdir(tmp_path))}'), tmp_path)

    cases = [
        (variant(lambda o: o.update(model_type='SRModel', path={'pretrain_network_g': str(bare), 'param_key_g': 'params',
                                                                'strict_load_g': True}) or
                 o['datasets']['train'].update(uint8_batches=False)),
         f"path.pretrain_network_g: {bare} is a bare state dict"),
        (variant(lambda o: o.update(model_type='SRModel')),
         'datasets.train.uint8_batches needs a model that converts uint8 batches on the device (PFDNModel)'),
        (variant(lambda o: o['logger'].update(wandb={'project': 'pfdn'}, use_tb_logger=True)),
         'the wandb package is not installed'),
        (variant(lambda o: o.update(val={'val_freq': 1, 'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnrr'}}})),
         "val.metrics.psnr.type 'calculate_psnrr' is not in BasicSR's metric registry (did you mean 'calculate_psnr'?)"),
        (variant(lambda o: o['train']['pixel_opt'].update(type='FooLoss')),
         "train.pixel_opt.type 'FooLoss' is not in BasicSR's loss registry"),
        (variant(lambda o: o['network_g'].update(type='PFDNN')),
         "network_g.type 'PFDNN' is not in BasicSR's arch registry (did you mean 'PFDN'?)"),
    ]
    import importlib.util
    if importlib.util.find_spec('wandb') is not None:  # the case exists only where wandb is missing
        cases = [c for c in cases if 'wandb' not in c[1]]
    for yml, message in cases:
        code, _, err = cli(['train', '-opt', yml], capsys)
        assert code == 2 and len(err) == 1 and err[0].startswith('error: ') and message in err[0], (message, err)
    assert not (tmp_path / 'experiments').exists()
    # the same check through BasicSR's own entry point
    r = python('-m', 'basicsr.train', '-opt', cases[-1][0], cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith('error: ') and 'PFDNN' in r.stderr


def test_a_pfdn_registered_by_user_code_wins_with_a_note(probes):
    """Registered after ours (user code that defines its own PFDN after basicsr is imported): it replaces ours.
    Registered before ours (a PFDN in the user's basicsr/archs): ours is not registered. A note either way."""
    code, out, err = probes.result('user PFDN')
    assert code == 0, err[-2000:]
    assert out.split() == ['later:', '__main__', 'earlier:', '__main__']
    notes = [line for line in err.splitlines() if line.startswith('note: ')]
    assert len(notes) == 2 and "replaces pfdn's PFDN" in notes[0] and 'was not registered' in notes[1], err


def test_python_m_basicsr_train_runs_a_shipped_yml_with_the_usual_cpu_overrides(photos, tmp_path):
    lq_val = {'datasets:val:dataroot_gt': photos['hr'], 'datasets:val:dataroot_lq': photos['lr']}
    overrides = ['num_gpu=0', 'manual_seed=~', 'datasets:train:num_worker_per_gpu=0', 'train:total_iter=2',
                 f"datasets:train:dataroot_gt={photos['gt']}", f"datasets:train:dataroot_lq={photos['lq']}",
                 'datasets:train:gt_size=64', 'datasets:train:batch_size_per_gpu=2', 'logger:use_tb_logger=false',
                 'logger:save_checkpoint_freq=2', 'val:val_freq=2'] + [f'{k}={v}' for k, v in lq_val.items()]
    proc = run_group([sys.executable, '-m', 'basicsr.train', '-opt', os.path.join(ROOT, 'options',
                                                                                  'train_pfdn_x4.yml'),
                      '--force_yml', *overrides], cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / 'experiments' / 'PFDN_x4_s1_lr64' / 'models' / 'net_g_deploy_latest.pth').is_file()
    if not torch.cuda.is_available():  # the CPU notes: compile and bf16 off, each said once
        assert proc.stderr.count('train.compile: true is turned off') == 1
        assert proc.stderr.count('train.amp: bf16 is turned off') == 1


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_tensorboard_starts_from_the_readme_install_and_serves_a_logged_scalar(photos, tmp_path):
    yml = write_yml(tiny_options('tb', datasets={'train': train_set(photos)}, train={'total_iter': 2},
                                 logger={'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': True}), tmp_path)
    proc = run_group([sys.executable, '-m', 'pfdn_arch.cli', 'train', '-opt', yml], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    port = free_port()
    tb = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), 'tensorboard'), '--logdir',
                           str(tmp_path / 'tb_logger'), '--port', str(port), '--host', '127.0.0.1'],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline, tags = time.time() + 120, {}
        while time.time() < deadline and not tags.get('tb'):
            assert tb.poll() is None, tb.stderr.read()[-2000:]
            try:
                with urllib.request.urlopen(f'http://127.0.0.1:{port}/data/plugin/scalars/tags', timeout=5) as r:
                    tags = json.load(r)
            except OSError:
                time.sleep(0.5)
        tag = next(t for t in tags['tb'] if 'l_pix' in t)
        url = f'http://127.0.0.1:{port}/data/plugin/scalars/scalars?run=tb&tag={urllib.request.quote(tag)}'
        with urllib.request.urlopen(url, timeout=10) as r:
            points = json.load(r)
        assert points and np.isfinite(points[0][2]) and points[0][1] >= 1
    finally:
        tb.terminate()
        tb.wait(30)
