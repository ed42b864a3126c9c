"""The command line: help everywhere, light imports, reparam on files, one-line errors, no overwriting."""
import os
import subprocess
import sys

import pytest
import torch

from conftest import ENV, cli, tiny_options, write_yml
from pfdn_arch import PFDN
from pfdn_arch.cli.main import COMMANDS

NAMES = [c.__name__.rsplit('.', 1)[1] for c in COMMANDS]


def test_help_answers_without_importing_torch_or_basicsr():
    code = ('import sys; from pfdn_arch.cli.main import main\n'
            'for args in [["--help"]] + [[c, "-h"] for c in sys.argv[1:]]:\n'
            '    assert main(args) == 0, args\n'
            'heavy = [m for m in ("torch", "basicsr", "cv2", "numpy") if m in sys.modules]\n'
            'print("heavy:", heavy)')
    r = subprocess.run([sys.executable, '-c', code, *NAMES], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == 'heavy: []'
    for name in NAMES:
        assert f'usage: basicsr {name}' in r.stdout


NORMAL_EXIT = """
import atexit, sys, threading
from pfdn_arch.console import console
class Finalized:
    def __del__(self):
        print('finalized', flush=True)
left = Finalized()  # a module global: finalized at the interpreter's teardown only
worker = threading.Thread(target=lambda: (__import__('time').sleep(0.5), print('thread done', flush=True)))
worker.start()

def at_exit():  # what the interpreter waits for at its exit besides the main thread and ours: nothing
    waiting = [t.name for t in threading.enumerate() if not t.daemon and t not in (threading.main_thread(), worker)]
    print('atexit ran; waiting for', waiting, flush=True)
atexit.register(at_exit)
sys.argv = ['basicsr'] + sys.argv[1:]
console()
"""


@pytest.mark.parametrize('command', ['infer', 'export', 'reparam'])
def test_a_command_ends_with_the_interpreters_own_exit_and_no_library_thread_to_wait_for(tmp_path, weights, command):
    """Every command ends through the interpreter's own exit (threads waited for, atexit handlers run, objects
    finalized: no private shortcut), and leaves no thread of a library's that the exit would wait for (OpenVINO's
    telemetry sender was one, and hung a process for good). Without CI in the environment, which some libraries
    read to stay quiet."""
    from pfdn_arch.layout.samples import sample_image
    import cv2

    src = tmp_path / 'in.png'
    cv2.imwrite(str(src), sample_image('chelsea.png')[:40, :48])
    torch.save({'params': PFDN().state_dict()}, tmp_path / 'train.pth')
    args = {'infer': ['infer', '-i', src, '-o', tmp_path / 'out', '--weights', weights, '--backend', 'openvino'],
            'export': ['export', '--weights', weights, '--out', tmp_path / 'exported', '--formats', 'onnx'],
            'reparam': ['reparam', '--in', tmp_path / 'train.pth', '--out', tmp_path / 'deploy.pth']}[command]
    env = {k: v for k, v in ENV.items() if k != 'CI'}
    r = subprocess.run([sys.executable, '-c', NORMAL_EXIT, *map(str, args)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert 'thread done' in lines and 'finalized' in lines
    assert 'atexit ran; waiting for []' in lines, lines
    assert lines.index('thread done') < lines.index('atexit ran; waiting for []') < lines.index('finalized')
    if command == 'reparam':
        assert len(torch.load(tmp_path / 'deploy.pth', weights_only=True)) == 70
    elif command == 'infer':
        assert cv2.imread(str(tmp_path / 'out' / 'in.png')).shape == (160, 192, 3)
        assert any(line.startswith('1 upscaled x4 into') for line in lines + r.stderr.splitlines())
    bad = subprocess.run([sys.executable, '-c', NORMAL_EXIT, 'infer', '-i', str(tmp_path / 'missing.png'), '-o',
                          str(tmp_path / 'o2'), '--weights', weights], capture_output=True, text=True, env=env,
                         timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith('error: ')


@pytest.mark.parametrize('name', NAMES)
def test_every_option_has_help(name, capsys):
    from pfdn_arch.cli.main import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == 'command').choices[name]
    parsers = [sub] + [p for a in sub._actions if a.dest == 'what' for p in a.choices.values()]
    for p in parsers:
        for action in p._actions:
            assert action.help, (name, action.option_strings)
            if action.default not in (None, False) and not action.required and action.dest != 'help':
                assert '%(default)' in p.formatter_class(p.prog)._get_help_string(action), (name, action.dest)
    assert cli([name, '-h'], capsys)[0] == 0  # never "error: missing -opt"


def test_reparam_writes_the_released_layout_and_refuses_to_overwrite(tmp_path, weights, capsys):
    net = PFDN()
    src, dst = tmp_path / 'train.pth', tmp_path / 'deploy.pth'
    torch.save({'params': net.state_dict()}, src)
    code, out, _ = cli(['reparam', '--in', src, '--out', dst], capsys)
    assert code == 0 and f'wrote {dst}: 70 tensors, 272,224 parameters' in out
    written = torch.load(dst, weights_only=True)
    assert list(written) == list(torch.load(weights, weights_only=True))
    x = torch.rand(1, 3, 20, 20)
    deployed = PFDN(deploy=True)
    deployed.load_state_dict(written)
    with torch.no_grad():
        assert (deployed(x) - net(x)).abs().max() < 1e-5

    before = dst.read_bytes()
    code, _, err = cli(['reparam', '--in', src, '--out', dst], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith(f'error: {dst}: ') and '--force' in err[0]
    assert dst.read_bytes() == before
    assert cli(['reparam', '--in', src, '--out', dst, '--force'], capsys)[0] == 0


def test_bad_inputs_give_one_error_line(tmp_path, weights, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    not_torch = tmp_path / 'x.pth'
    not_torch.write_text('hello')
    empty = tmp_path / 'empty'
    empty.mkdir()
    an_image = tmp_path / 'a.png'
    import cv2
    import numpy as np
    cv2.imwrite(str(an_image), np.zeros((20, 20, 3), np.uint8))
    cases = [
        (('reparam', '--in', not_torch, '--out', tmp_path / 'o.pth'), f'{not_torch}: not a PyTorch checkpoint'),
        (('reparam', '--in', weights, '--out', tmp_path / 'o.pth'), 'already in the deployed form'),
        (('reparam', '--in', tmp_path / 'missing.pth', '--out', tmp_path / 'o.pth'), 'not found'),
        (('train', '-opt', tmp_path / 'missing.yml'), 'options file not found'),
        (('infer', '-i', empty, '-o', tmp_path / 'out'), 'no images'),
        (('infer', '-i', an_image, '-o', tmp_path / 'out'), '--weights: not given, and weights/team08_PFDN.pth is '
                                                             f'not under {tmp_path}'),
    ]
    for args, message in cases:
        code, _, err = cli(args, capsys)
        assert code == 2 and len(err) == 1 and message in err[0] and err[0].startswith('error: '), (args, err)
    assert not (tmp_path / 'o.pth').exists()
    code, _, err = cli(['nonsense'], capsys)  # argparse's own usage error
    assert code == 2 and "invalid choice: 'nonsense'" in err[-1]


def test_train_refuses_missing_dataset_before_basicsr_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yml = write_yml(tiny_options('x', datasets={'train': {'type': 'PairedImageDataset', 'dataroot_gt': 'nowhere.lmdb',
                                                          'io_backend': {'type': 'lmdb'}}}), tmp_path)
    code, _, err = cli(['train', '-opt', yml], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith(f'error: {yml}: an input is not there: nowhere.lmdb')
    assert '(make it: basicsr prepare lmdb --gt <HR folder>' in err[0]  # the command that makes it
    assert not (tmp_path / 'experiments').exists()


def test_shipped_options_are_found_from_any_folder(tmp_path, monkeypatch):
    from pfdn_arch.layout.locations import option_file, shipped_options_dir
    monkeypatch.chdir(tmp_path)
    shipped = shipped_options_dir()
    assert sorted(f for f in os.listdir(shipped) if f.endswith('.yml')) == sorted(
        f for f in os.listdir(os.path.join(os.path.dirname(os.path.dirname(__file__)), 'options')) if f.endswith('.yml'))
    assert option_file('options/train_pfdn_x4.yml') == os.path.join(shipped, 'train_pfdn_x4.yml')
    (tmp_path / 'options').mkdir()
    (tmp_path / 'options' / 'train_pfdn_x4.yml').write_text('name: mine\n')  # a user's own copy comes first
    assert option_file('options/train_pfdn_x4.yml') == 'options/train_pfdn_x4.yml'


def test_a_checkout_on_pythonpath_without_an_install_finds_its_own_options(tmp_path):
    """The GPU machine's route (no package index: the checkout on PYTHONPATH, bench/gpu/run.sh): the package is
    imported from the checkout, where no ``pfdn_arch/options/`` exists, and no install maps one; the commands' defaults
    (``options/train_pfdn_x4.yml`` from any folder) are then the checkout's ``options/``."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = (
        "import sys\n"
        # no editable install's finder: the package is only where PYTHONPATH puts it
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in (getattr(f, '__module__', '') or '')]\n"
        "import pfdn_arch\n"
        "from pfdn_arch.layout.locations import option_file\n"
        "print(pfdn_arch.__file__)\n"
        "print(option_file('options/train_pfdn_x4.yml'))\n")
    r = subprocess.run([sys.executable, '-c', script], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                       timeout=300)  # ENV: the checkout first on PYTHONPATH
    assert r.returncode == 0, r.stderr[-2000:]
    package, found = r.stdout.split()[-2:]
    assert package == os.path.join(root, 'pfdn_arch', '__init__.py')
    assert found == os.path.join(root, 'options', 'train_pfdn_x4.yml')
