"""The command line: reparam on files, one-line errors, no overwriting."""
import os

import torch

from conftest import run_cli, tiny_options, write_yml
from pfdn_arch import PFDN


def test_reparam_writes_the_released_layout_and_refuses_to_overwrite(tmp_path, weights):
    net = PFDN()
    src, dst = tmp_path / 'train.pth', tmp_path / 'deploy.pth'
    torch.save({'params': net.state_dict()}, src)
    r = run_cli('reparam', '--in', str(src), '--out', str(dst))
    assert r.returncode == 0, r.stderr
    out = torch.load(dst, weights_only=True)
    assert list(out) == list(torch.load(weights, weights_only=True))
    x = torch.rand(1, 3, 20, 20)
    deployed = PFDN(deploy=True)
    deployed.load_state_dict(out)
    with torch.no_grad():
        assert (deployed(x) - net(x)).abs().max() < 1e-5

    mtime = os.path.getmtime(dst)
    r = run_cli('reparam', '--in', str(src), '--out', str(dst))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [f'error: {dst} exists; pass --force to overwrite '
                                                                   'it or choose another --out']
    assert os.path.getmtime(dst) == mtime
    assert run_cli('reparam', '--in', str(src), '--out', str(dst), '--force').returncode == 0


def test_bad_inputs_give_one_error_line(tmp_path, weights):
    not_torch = tmp_path / 'x.pth'
    not_torch.write_text('hello')
    cases = [
        (('reparam', '--in', str(not_torch), '--out', str(tmp_path / 'o.pth')), 'cannot read'),
        (('reparam', '--in', weights, '--out', str(tmp_path / 'o.pth')), 'already in the deployed form'),
        (('reparam', '--in', str(tmp_path / 'missing.pth'), '--out', str(tmp_path / 'o.pth')), 'not found'),
        (('train', '-opt', str(tmp_path / 'missing.yml')), 'options file not found'),
        (('nonsense',), 'unknown command'),
    ]
    for args, message in cases:
        r = run_cli(*args, cwd=tmp_path)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and message in lines[0] and 'Traceback' not in r.stderr, (
            args, r.stderr)
    assert not (tmp_path / 'o.pth').exists()


def test_train_refuses_missing_dataset_before_basicsr_starts(tmp_path):
    opt = write_yml(tiny_options('x', datasets={'train': {'type': 'PairedImageDataset', 'dataroot_gt': 'nowhere.lmdb',
                                                          'io_backend': {'type': 'lmdb'}}}), tmp_path)
    r = run_cli('train', '-opt', str(opt), cwd=tmp_path)
    assert r.returncode == 2 and 'datasets.train.dataroot_gt not found: nowhere.lmdb' in r.stderr
    assert not (tmp_path / 'experiments').exists()
