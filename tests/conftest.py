import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

# With pytest-xdist (-n N), N test processes share the cores: each, and every process it starts, gets an equal share
# as torch threads (OMP_NUM_THREADS, read when torch starts), so that OpenMP pools never outnumber the cores and spin
# against each other (docs/design.md, Tests); a value the caller set stays.
if os.environ.get('PYTEST_XDIST_WORKER_COUNT'):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1
    os.environ.setdefault('OMP_NUM_THREADS', str(max(1, cores // int(os.environ['PYTEST_XDIST_WORKER_COUNT']))))
THREADS = int(os.environ.get('OMP_NUM_THREADS') or 2)

import torch  # noqa: E402  (after the thread share)

import pfdn_arch  # noqa: F401  (compat + registries)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The data some tests need, found first where the README puts it in the checkout (weights/, datasets/benchmark/
# Set5/HR, as its blocks fetch and prepare them), else in the folder PFDN_SHARED names, else ../shared beside the
# checkout; those two are laid out as weights/, data/benchmark/<set>/HR, data/train/SunHays80/HR (the GPU machine
# gets a copy carried in .gpu/shared). README.md's test paragraph says so.
SHARED = os.path.normpath(os.environ.get('PFDN_SHARED') or os.path.join(ROOT, '..', 'shared'))


def _found(in_checkout, in_shared):
    here = in_checkout and os.path.join(ROOT, in_checkout)
    return here if here and os.path.exists(here) else os.path.join(SHARED, in_shared)


WEIGHTS = _found(os.path.join('weights', 'team08_PFDN.pth'), os.path.join('weights', 'team08_PFDN.pth'))
SET5_HR = _found(os.path.join('datasets', 'benchmark', 'Set5', 'HR'), os.path.join('data', 'benchmark', 'Set5', 'HR'))
TRAIN_HR = _found(None, os.path.join('data', 'train', 'SunHays80', 'HR'))
SPANDREL = _found(None, os.path.join('upstream', 'spandrel'))  # spandrel 0.4.2's source: the PFDN patch's base
# what each is and the one command that brings it, for a skip line (pytest's "SKIPPED [1] file:line: " before it)
MISSING = {WEIGHTS: 'no weights/team08_PFDN.pth (released weights): the curl line of README.md\'s upscale block',
           SET5_HR: 'no datasets/benchmark/Set5/HR: basicsr prepare benchmark --hr <Set5 HR PNGs> --name Set5',
           TRAIN_HR: 'no SunHays80 (80 JPEGs standing in for your photos): PFDN_SHARED=<folder with data/train/>',
           SPANDREL: 'no spandrel 0.4.2 source tree: PFDN_SHARED=<folder with upstream/spandrel/>'}
# the ONNX exports the runtimes keep (pfdn_arch/deploy/runtime/export_cache.py) go to a folder of this run, shared by
# its tests and the commands they start, never to the user's ~/.cache
os.environ['PFDN_CACHE_DIR'] = tempfile.mkdtemp(prefix='pfdn-test-cache-')
atexit.register(shutil.rmtree, os.environ['PFDN_CACHE_DIR'], True)


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: an end-to-end run in processes of its own, of five seconds or more (a '
                                       'training, a schedule, a film, interpreters probed one by one); pytest -m "not '
                                       'slow" leaves these out for the edit loop (CI runs everything)')


def need_shared(path):
    """The data at ``path`` (``WEIGHTS``, ``SET5_HR``, ``TRAIN_HR``), required in CI; elsewhere, where it is
    missing, the test skips with one short line: what is missing and the command that brings it."""
    if os.path.exists(path):
        return path
    if os.environ.get('CI'):
        raise FileNotFoundError(f'{path} is missing; CI must see ../shared')
    pytest.skip(MISSING.get(path, f'no {path}: set PFDN_SHARED to a folder laid out as ../shared'))


@pytest.fixture
def weights():
    return need_shared(WEIGHTS)


@pytest.fixture
def set5_hr():
    return need_shared(SET5_HR)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(THREADS)


def randomized(net, seed=0):
    """Random values in every parameter of every branch (biases too), so no branch can be silently ignored.
    Weights are scaled by fan-in so that activations stay O(1), as in a trained net."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * (0.5 / fan_in**0.5 if p.dim() > 1 else 0.05))
    return net


def released_and_random_scales(folder):
    """{scale: checkpoint}: the released weights (x4) and a small random PFDN of x2 and of x3 saved in ``folder``
    (every app check runs all three scales)."""
    from pathlib import Path
    from pfdn_arch.archs import PFDN

    files = {4: Path(need_shared(WEIGHTS))}
    for scale in (2, 3):
        files[scale] = Path(folder) / f'random_x{scale}.pth'
        torch.save(randomized(PFDN(upscale=scale, num_block=2, num_feat=16, num_partial_feat=8, esa_channels=8),
                              seed=scale).eval().state_dict(), files[scale])
    return files


def short_film(path, frames=6):
    """A film of ``frames`` 48x32 H.264 frames, a real photo shifted a pixel each frame (what a reader's clip stands
    for in the pages' commands)."""
    import av
    import numpy as np
    from pfdn_arch.layout.samples import sample_image

    with av.open(str(path), 'w') as c:
        s = c.add_stream('libx264', rate=10)
        s.width, s.height, s.pix_fmt = 48, 32, 'yuv420p'
        for i in range(frames):
            frame = np.ascontiguousarray(np.roll(sample_image('chelsea.png')[:32, :48], i, 1))
            for packet in s.encode(av.VideoFrame.from_ndarray(frame, format='bgr24')):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


def lr_photo(name='coffee.png', size=(100, 150)):
    """A real photo, downscaled to ``size`` (h, w): BGR uint8."""
    import cv2
    from pfdn_arch.layout.samples import sample_image

    return cv2.resize(sample_image(name), size[::-1], interpolation=cv2.INTER_AREA)


# the checkout first, then whatever PYTHONPATH the caller had (a GPU machine runs from wheels unpacked on it); a
# process the tests start that crashes says where (Python's fault handler)
ENV = dict(os.environ, PYTHONFAULTHANDLER='1',
           PYTHONPATH=os.pathsep.join(filter(None, (ROOT, os.environ.get('PYTHONPATH')))))


def run_cli(*args, cwd=None, timeout=600, env=None):
    """Run `python -m pfdn_arch.cli ...` in a process of its own, as a user would (for what needs one: training
    pipelines, kills, signals); CompletedProcess with text output. On a timeout its whole process group is killed
    (stages, DataLoader workers), so nothing outlives the test."""
    return run_group([sys.executable, '-m', 'pfdn_arch.cli', *map(str, args)], cwd=cwd, timeout=timeout,
                     env=dict(ENV, **(env or {})))


def start_cli(*args, cwd=None, output=False):
    """`python -m pfdn_arch.cli ...` started, not waited for, in a session of its own (so that a test can kill or
    interrupt it as a group); its stdout/stderr captured as text when ``output``, else discarded."""
    pipe = subprocess.PIPE if output else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, '-m', 'pfdn_arch.cli', *map(str, args)], cwd=cwd, env=ENV, stdout=pipe,
                            stderr=pipe, text=True, start_new_session=True)


def run_group(cmd, cwd=None, timeout=600, env=None):
    """subprocess.run in a new session, the session killed on timeout."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env or ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


class Probes:
    """Short Python processes started together and read later: their interpreter start-ups (torch and basicsr
    imports, single-threaded) overlap instead of adding up."""

    def __init__(self):
        self.procs = {}

    def start(self, name, code, env=None, args=()):
        self.procs[name] = subprocess.Popen([sys.executable, '-c', code, *map(str, args)], stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True, env=dict(ENV, **(env or {})))

    def result(self, name, timeout=300):
        """(returncode, stdout, stderr) of a started probe."""
        proc = self.procs[name]
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err


def cli(args, capsys):
    """`basicsr <args>` in this process (no interpreter start-up): (exit status, stdout, the stderr lines that are
    not progress bars)."""
    from pfdn_arch.cli.main import main

    try:
        code = main(list(map(str, args)))
    finally:
        _forget_basicsr_logger()
    out, err = capsys.readouterr()
    lines = [part for line in err.splitlines() for part in line.split('\r')]
    return code, out, [line for line in lines if line.strip() and '%|' not in line]


def _forget_basicsr_logger():
    """BasicSR's logger is made once per process, its console handler bound to the stderr of that moment (here a
    test's capture, closed after the test): the next in-process run starts a logger of its own, as a new process
    would."""
    import logging

    from basicsr.utils import logger as basicsr_logger

    for name in list(basicsr_logger.initialized_logger):
        for handler in list(logging.getLogger(name).handlers):
            logging.getLogger(name).removeHandler(handler)
            handler.close()
    basicsr_logger.initialized_logger.clear()


TINY_NET = {'type': 'PFDN', 'num_feat': 16, 'num_block': 2, 'num_partial_feat': 8, 'esa_channels': 8}


def tiny_options(name='unit', train=None, datasets=None, network_g=None, **top):
    """A small, complete BasicSR training yml for PFDNModel (a 2-block, 16-channel PFDN): model-level tests build
    it in-process in a fraction of a second instead of running a schedule."""
    opt = {
        'name': name, 'model_type': 'PFDNModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': datasets or {},
        'network_g': dict(TINY_NET, **(network_g or {})),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5}, 'total_iter': 1000,
                  'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 1000, 'use_tb_logger': False},
    }
    opt['train'].update(train or {})
    opt.update(top)
    return opt


def write_yml(opt, folder):
    import yaml

    os.makedirs(str(folder), exist_ok=True)
    path = os.path.join(str(folder), opt['name'] + '.yml')
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


def parse_yml(path, root, is_train=True):
    """The options BasicSR's pipeline gets from a yml when `basicsr train` runs it from ``root``."""
    from pfdn_arch.checks.options import RunOptions

    opt, _ = RunOptions(str(path), is_train).to_basicsr(str(root))
    opt['root_path'] = str(root)
    return opt


def tiny_model(root, seed=0, **kwargs):
    """A PFDNModel built in-process from ``tiny_options(**kwargs)`` with deterministic initial weights."""
    from basicsr.models import build_model

    kwargs.setdefault('datasets', {'train': {'name': 'unused', 'type': 'PairedCropDataset'}})  # a model needs none
    opt = parse_yml(write_yml(tiny_options(**kwargs), root), root)
    for key in ('models', 'training_states'):
        os.makedirs(opt['path'][key], exist_ok=True)
    torch.manual_seed(seed)
    return build_model(opt)


def uint8_batch(seed=0, n=2, gt=96):
    """A GT batch and its 4x average-pooled LQ, as uint8 tensors (what PairedCropDataset delivers)."""
    g = torch.Generator().manual_seed(seed)
    hr = (torch.rand(n, 3, gt, gt, generator=g) * 255).round().to(torch.uint8)
    lq = torch.nn.functional.avg_pool2d(hr.float(), 4).round().to(torch.uint8)
    return {'lq': lq, 'gt': hr}


@pytest.fixture(scope='session')
def photos(tmp_path_factory):
    """Three built-in photos, their x4 LR, and paired LMDBs of both formats made from them (made once)."""
    from pfdn_arch.data import preparation as prep
    from pfdn_arch.layout.samples import write_samples

    root = tmp_path_factory.mktemp('photos')
    hr, lr = root / 'hr', root / 'lr'
    write_samples(str(hr), ('astronaut.png', 'chelsea.png', 'coffee.png'))
    prep.make_lr(str(hr), str(lr), 4)
    out = {'root': root, 'hr': hr, 'lr': lr}
    for fmt in ('decoded', 'png'):
        out[fmt] = (str(root / f'gt_{fmt}.lmdb'), str(root / f'lq_{fmt}.lmdb'))
        prep.make_paired_lmdb(str(hr), str(lr), *out[fmt], fmt, 4)
    out['gt'], out['lq'] = out['decoded']
    return out


def train_set(photos, gt_size=64, batch=2, workers=0, **extra):
    """A PairedCropDataset train entry on the ``photos`` LMDBs."""
    return dict({'name': 'train', 'type': 'PairedCropDataset', 'dataroot_gt': photos['gt'], 'dataroot_lq': photos['lq'],
                 'gt_size': gt_size, 'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': workers,
                 'batch_size_per_gpu': batch, 'dataset_enlarge_ratio': 10, 'prefetch_mode': None,
                 'uint8_batches': True}, **extra)


def val_set(photos):
    return {'name': 'val', 'type': 'PairedImageDataset', 'dataroot_gt': str(photos['hr']),
            'dataroot_lq': str(photos['lr']), 'io_backend': {'type': 'disk'}}


# ------------------------------------------------------------------------------------ shared by many tests
def snapshot(folder):
    """{relative path: bytes} of every file under ``folder``: what a run must leave as it was."""
    return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), 'rb').read()
            for d, _, files in os.walk(folder) for f in files}


def one_error(code, err, *names, status=2):
    """The run ended with ``status`` and one error line naming every string in ``names``."""
    errors = [line for line in err if line.startswith('error: ')]
    assert code == status and len(errors) == 1, (code, err)
    assert all(str(n) in errors[0] for n in names), (names, errors)
    return errors[0]


def tiny_checkpoint(folder):
    """A small deployed PFDN (``TINY_NET``, seeded) saved in the released layout at ``folder``/tiny.pth."""
    from pfdn_arch.archs import PFDN
    torch.manual_seed(0)
    path = folder / 'tiny.pth'
    torch.save(PFDN(**{k: v for k, v in TINY_NET.items() if k != 'type'}, deploy=True).state_dict(), path)
    return path


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """A small deployed PFDN checkpoint (fast to run), in the released layout."""
    return tiny_checkpoint(tmp_path_factory.mktemp('tiny'))


def infer(args, capsys, tiny):
    """``basicsr infer`` of the ``tiny`` checkpoint on torch, in this process: (code, stdout, stderr lines)."""
    return cli(['infer', '--weights', tiny, '--backend', 'torch', *map(str, args)], capsys)


def tiny_state(deploy=True, scale=4, seed=0):
    """The state dict of a seeded small PFDN of either form at ``scale``."""
    from pfdn_arch.archs import PFDN
    torch.manual_seed(seed)
    net = PFDN(**{k: v for k, v in TINY_NET.items() if k != 'type'}, upscale=scale, deploy=deploy)
    return net.state_dict()


# ---------------------------------------------------------------- helpers several modules use
@pytest.fixture(scope='module')
def trained(photos, tmp_path_factory):
    """A trained tiny experiment (a save at iteration 2) in a folder of its own, and its yml."""
    root = tmp_path_factory.mktemp('trained')
    yml = write_yml(tiny_options('exp', datasets={'train': train_set(photos), 'val': val_set(photos)},
                                 network_g={'upscale': 4},
                                 train={'total_iter': 2}, val={'val_freq': 2, 'save_img': False},
                                 logger={'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False}), root)
    proc = run_group([sys.executable, '-m', 'pfdn_arch.cli', 'train', '-opt', yml], cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root, yml


@pytest.fixture(scope='module')
def data(photos, tmp_path_factory):
    """The shared photos and LMDBs, and a tiny released-layout checkpoint."""
    return dict(photos, tiny=tiny_checkpoint(tmp_path_factory.mktemp('tiny')))


def train_yml(data, folder, name='run', total=4, save_every=2, **train):
    ds = {'train': train_set(data)}
    return write_yml(tiny_options(name, train=dict({'total_iter': total}, **train), datasets=ds,
                                  logger={'print_freq': 1, 'save_checkpoint_freq': save_every,
                                          'use_tb_logger': False}), folder)


def wait_for(predicate, timeout=300):
    """Until ``predicate()`` holds (asked every 50 ms); the test fails where it still does not after ``timeout``
    seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline and not predicate():
        time.sleep(0.05)
    assert predicate()
