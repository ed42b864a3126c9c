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


def run_cli(*args, cwd=None, timeout=600, env=None):
    """Run `python -m pfdn_arch.cli ...` as a user would; returns CompletedProcess with text output."""
    full_env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    full_env.update(env or {})
    return subprocess.run([sys.executable, '-m', 'pfdn_arch.cli', *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)
