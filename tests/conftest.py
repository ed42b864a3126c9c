import os
import subprocess
import sys

import pytest
import torch

import pfdn_arch  # noqa: F401  (compat + registries)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(ROOT, '..', 'shared'))
WEIGHTS = os.path.join(SHARED, 'weights', 'team08_PFDN.pth')
SET5_HR = os.path.join(SHARED, 'data', 'benchmark', 'Set5', 'HR')


def need_shared(path):
    """Shared data is required in CI; on a user's machine without ../shared the test skips with the reason."""
    if os.path.exists(path):
        return path
    if os.environ.get('CI'):
        raise FileNotFoundError(f'{path} is missing; CI must see ../shared')
    pytest.skip(f'{path} not present (../shared is only on the project machines)')


@pytest.fixture
def weights():
    return need_shared(WEIGHTS)


@pytest.fixture
def set5_hr():
    return need_shared(SET5_HR)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


def randomized(net, seed=0):
    """Random values in every parameter of every branch (biases too), so no branch can be silently ignored.
    Weights are scaled by fan-in so that activations stay O(1), as in a trained net."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * (0.5 / fan_in**0.5 if p.dim() > 1 else 0.05))
    return net


def run_cli(*args, cwd=None, timeout=600, env=None):
    """Run `python -m pfdn_arch.cli ...` as a user would; returns CompletedProcess with text output."""
    full_env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    full_env.update(env or {})
    return subprocess.run([sys.executable, '-m', 'pfdn_arch.cli', *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)
