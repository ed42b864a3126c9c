"""No command opens a network connection: infer, export, test and a short train, each run as a user runs it (a
process of its own, no CI in the environment: OpenVINO's telemetry stays quiet under CI=true, so CI alone would hide
it), with every attempt to reach the network recorded and refused by a guard installed before anything else runs."""
import os
import subprocess
import sys

import cv2
import pytest

from conftest import ENV, ROOT, tiny_options, train_set, val_set, write_yml
from pfdn_arch.layout.samples import sample_image

GUARD = '''
import os, socket

_LOG = os.environ['PFDN_NETWORK_LOG']


def _said(what):
    with open(_LOG, 'a') as f:
        f.write(f'{os.getpid()} {what}\\n')


def _refused(what):
    _said(what)
    return OSError(f'no network in this test ({what})')


_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        raise _refused(f'connect {address}')
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        raise _refused(f'connect_ex {address}')
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    raise _refused(f'getaddrinfo {host}')


def gethostbyname(host):
    raise _refused(f'gethostbyname {host}')


socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
socket.getaddrinfo, socket.gethostbyname = getaddrinfo, gethostbyname
'''


def _guarded(tmp_path):
    """The environment of a process whose every network attempt is refused and written to the returned log."""
    guard = tmp_path / 'guard'
    guard.mkdir(exist_ok=True)
    (guard / 'sitecustomize.py').write_text(GUARD)
    log = tmp_path / 'network.log'
    env = {k: v for k, v in ENV.items() if k != 'CI'}
    env.update(PFDN_NETWORK_LOG=str(log), PYTHONPATH=os.pathsep.join([str(guard), env.get('PYTHONPATH', ROOT)]))
    return env, log


def test_the_guard_catches_what_an_unguarded_library_sends(tmp_path):
    """OpenVINO imported without pfdn in the process (its telemetry on, no CI): the guard sees its attempt, so the
    guard would see ours."""
    env, log = _guarded(tmp_path)
    code = ('import time, openvino\ntime.sleep(3)\n')
    r = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert log.is_file() and 'google-analytics' in log.read_text(), log.read_text() if log.exists() else 'no log'


@pytest.mark.slow
def test_no_command_reaches_the_network(tmp_path, photos, tiny):
    env, log = _guarded(tmp_path)
    pictures = tmp_path / 'pictures'
    pictures.mkdir()
    for i in range(3):
        cv2.imwrite(str(pictures / f'{i}.png'), sample_image('astronaut.png')[:300, :300 + 10 * i])
    train = write_yml(tiny_options('offline_train', datasets={'train': train_set(photos)},
                                   train={'total_iter': 2}, logger={'print_freq': 1, 'save_checkpoint_freq': 2,
                                                                    'use_tb_logger': False}), tmp_path)
    test = write_yml(dict(tiny_options('offline_test', network_g={'deploy': True}),
                          datasets={'test_1': val_set(photos)},
                          path={'pretrain_network_g': str(tiny), 'strict_load_g': True},
                          val={'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4}}}),
                     tmp_path)
    commands = [['infer', '-i', pictures, '-o', tmp_path / 'up', '--weights', tiny, '--backend', 'openvino'],
                ['export', '--weights', tiny, '--out', tmp_path / 'exported', '--formats', 'pth', 'onnx'],
                ['test', '-opt', test], ['train', '-opt', train]]
    for args in commands:
        r = subprocess.run([sys.executable, '-m', 'pfdn_arch.cli', *map(str, args)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, (args[0], r.stderr[-3000:])
        assert not log.exists(), (args[0], log.read_text())
        if args[0] == 'infer':  # OpenVINO ran: the library whose import sends telemetry when it may
            assert 'backend: openvino' in r.stderr, r.stderr[-1000:]
    assert len([p for p in os.listdir(tmp_path / 'up') if p[0] != '.']) == 3
