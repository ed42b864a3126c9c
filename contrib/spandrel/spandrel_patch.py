"""PFDN for spandrel upstream: make the patch, and check it with spandrel's own tools.

    python contrib/spandrel/spandrel_patch.py make  --spandrel SPANDREL_TREE --weights team08_PFDN.pth
    python contrib/spandrel/spandrel_patch.py check --spandrel SPANDREL_TREE --weights team08_PFDN.pth

SPANDREL_TREE is spandrel's source at its 0.4.2 release (the patch's base). Both work on a copy in a temporary
folder; the tree given is never changed.

make: adds PFDN to the copy the way spandrel's CONTRIBUTING.md asks (``architectures/PFDN/`` is this package's
``pfdn_arch/deploy/export/spandrel_pfdn/`` byte for byte, its registry entry, a README line, ``tests/test_PFDN.py``),
lets spandrel's own ``--snapshot-update`` write the snapshot and the reference outputs of the official weights, and
writes the difference as ``PFDN.patch`` beside this script.

check: applies ``PFDN.patch`` to a fresh copy and runs, offline (the official weights placed where spandrel's
``ModelFile`` looks, so nothing is downloaded):
  1. that the patch's PFDN folder is still this package's (one home for detection and hyperparameters);
  2. spandrel's ``pytest tests/test_PFDN.py tests/test_registry.py``;
  3. every other architecture's ``test_load`` dummies: none is claimed by PFDN (``detect_plugin.py``);
  4. ruff (lint and format) and pyright, at the versions spandrel pins, with spandrel's configuration, on the files
     the patch adds or changes.
Each step prints one line; the exit status is 1 when any failed.
"""
import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import List, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PATCH = os.path.join(HERE, 'PFDN.patch')
SOURCE = os.path.join(ROOT, 'pfdn_arch', 'deploy', 'export', 'spandrel_pfdn')  # the one home
ARCH_DIR = os.path.join('libs', 'spandrel', 'spandrel', 'architectures', 'PFDN')
REGISTRY = os.path.join('libs', 'spandrel', 'spandrel', '__helpers', 'main_registry.py')
TEST = os.path.join('tests', 'test_PFDN.py')
WEIGHTS_NAME = 'team08_PFDN.pth'  # the name ModelFile.from_url gives the official URL's file
# spandrel's pins (requirements-dev.txt at 0.4.2)
RUFF, PYRIGHT = '0.5.0', '1.1.342'
README_LINE = '- [PFDN](https://github.com/icandle/PFDN) | [Models](https://github.com/icandle/PFDN/tree/main/model_zoo)\n'


def _files(folder: str) -> List[str]:
    """Relative paths of the files under ``folder`` (no caches)."""
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, dirs, files in os.walk(folder)
                  for f in files if '__pycache__' not in d and not f.endswith('.pyc'))


def _run(cmd: Sequence[str], cwd: str, env: dict = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True)


def _env(tree: str) -> dict:
    """spandrel's tests as its CI runs them, with the copy's libs first (they shadow an installed spandrel)."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE='1')
    env['PYTHONPATH'] = os.pathsep.join([os.path.join(tree, 'libs', 'spandrel'),
                                         os.path.join(tree, 'libs', 'spandrel_extra_arches'), HERE])
    env.pop('GITHUB_EVENT_NAME', None)  # their PR-only skip of unchanged architectures must not skip ours
    return env


def copy_tree(spandrel: str, work: str) -> str:
    tree = os.path.join(work, 'spandrel')
    shutil.copytree(spandrel, tree, ignore=shutil.ignore_patterns('.git', '__pycache__', '*.pyc', 'models', 'zips',
                                                                  '.pytest_cache'))
    # a repository, so that git diff and git apply see the copy as spandrel's tree
    for cmd in (['git', 'init', '-q'], ['git', 'add', '-A'],
                ['git', '-c', 'user.name=pfdn', '-c', 'user.email=pfdn@localhost', 'commit', '-q', '-m', 'base']):
        r = _run(cmd, tree)
        if r.returncode:
            raise SystemExit(f'error: {" ".join(cmd)} failed in the copy of spandrel: {r.stderr.strip()}')
    return tree


def place_weights(tree: str, weights: str) -> None:
    os.makedirs(os.path.join(tree, 'tests', 'models'), exist_ok=True)
    shutil.copyfile(weights, os.path.join(tree, 'tests', 'models', WEIGHTS_NAME))


def add_pfdn(tree: str) -> None:
    """The contribution, written into ``tree`` as CONTRIBUTING.md asks."""
    arch = os.path.join(tree, ARCH_DIR)
    for rel in _files(SOURCE):
        os.makedirs(os.path.dirname(os.path.join(arch, rel)), exist_ok=True)
        shutil.copyfile(os.path.join(SOURCE, rel), os.path.join(arch, rel))
    registry = os.path.join(tree, REGISTRY)
    with open(registry) as f:
        text = f.read()
    text = text.replace('    PLKSR,\n', '    PFDN,\n    PLKSR,\n', 1)
    text = text.replace('    ArchSupport.from_architecture(AuraSR.AuraSRArch()),\n',
                        '    ArchSupport.from_architecture(AuraSR.AuraSRArch()),\n'
                        '    ArchSupport.from_architecture(PFDN.PFDNArch()),\n', 1)
    if 'PFDN.PFDNArch()' not in text or '    PFDN,\n' not in text:
        raise SystemExit(f'error: {REGISTRY} is not laid out as in spandrel 0.4.2; add PFDN to it by hand')
    with open(registry, 'w') as f:
        f.write(text)
    readme = os.path.join(tree, 'README.md')
    with open(readme) as f:
        lines = f.readlines()
    at = next(i for i, line in enumerate(lines) if line.startswith('- [PLKSR]'))
    lines.insert(at, README_LINE)
    with open(readme, 'w') as f:
        f.writelines(lines)
    shutil.copyfile(os.path.join(HERE, 'test_PFDN.py'), os.path.join(tree, TEST))


def make(spandrel: str, weights: str) -> int:
    with tempfile.TemporaryDirectory() as work:
        tree = copy_tree(spandrel, work)
        add_pfdn(tree)
        place_weights(tree, weights)
        r = _run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', TEST, '--snapshot-update'], tree,
                 _env(tree))
        if r.returncode:
            print(r.stdout[-3000:] + r.stderr[-2000:])
            raise SystemExit('error: spandrel\'s tests for PFDN failed while making the snapshots')
        shutil.rmtree(os.path.join(tree, 'tests', 'models'))
        _run(['git', 'add', '-A'], tree)
        diff = _run(['git', 'diff', '--cached', '--binary'], tree)
        tmp = PATCH + '.tmp'
        with open(tmp, 'w') as f:
            f.write(diff.stdout)
        os.replace(tmp, PATCH)
        changed = _run(['git', 'diff', '--cached', '--name-only'], tree).stdout.split()
    print(f'wrote {os.path.relpath(PATCH)}: {len(changed)} files ({", ".join(changed)})')
    return 0


def matches_package(tree: str) -> bool:
    """Whether the PFDN folder and test in ``tree`` (patched) are, byte for byte, this package's ``SOURCE`` and
    ``test_PFDN.py`` beside this script."""
    arch = os.path.join(tree, ARCH_DIR)
    return (_files(arch) == _files(SOURCE)
            and all(filecmp.cmp(os.path.join(arch, rel), os.path.join(SOURCE, rel), shallow=False)
                    for rel in _files(SOURCE))
            and filecmp.cmp(os.path.join(tree, TEST), os.path.join(HERE, 'test_PFDN.py'), shallow=False))


def changed_files(tree: str) -> List[str]:
    """The Python files the patch adds or changes."""
    _run(['git', 'add', '-A'], tree)
    names = _run(['git', 'diff', '--cached', '--name-only'], tree).stdout.split()
    return [n for n in names if n.endswith('.py')]


def check(spandrel: str, weights: str, tools: bool = True) -> int:
    failed = []

    def step(name: str, ok: bool, detail: str = '') -> None:
        print(f'{"ok" if ok else "FAILED"}: {name}' + (f'\n{detail}' if detail and not ok else ''), flush=True)
        if not ok:
            failed.append(name)

    with tempfile.TemporaryDirectory() as work:
        tree = copy_tree(spandrel, work)
        r = _run(['git', 'apply', '--binary', PATCH], tree)
        if r.returncode:
            print(f'error: {os.path.relpath(PATCH)} does not apply to {spandrel}: {r.stderr.strip()}')
            return 1
        step('the patch\'s architectures/PFDN and tests/test_PFDN.py are this package\'s (else: make again)',
             matches_package(tree))
        place_weights(tree, weights)
        env = _env(tree)
        t = time.time()
        r = _run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', TEST,
                  os.path.join('tests', 'test_registry.py')], tree, env)
        step(f'spandrel\'s pytest {TEST} tests/test_registry.py: {_last_line(r.stdout)} ({time.time() - t:.0f} s)',
             r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:])
        t = time.time()
        tests = sorted(f for f in os.listdir(os.path.join(tree, 'tests'))
                       if f.startswith('test_') and f.endswith('.py') and f != 'test_PFDN.py')
        r = _run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-p', 'detect_plugin',
                  '-k', 'test_load', *[os.path.join('tests', f) for f in tests]], tree, env)
        step(f'every other architecture\'s test_load dummies, none claimed by PFDN: {_last_line(r.stdout)} '
             f'({time.time() - t:.0f} s)', r.returncode == 0 and 'PFDN claimed none of' in r.stdout,
             r.stdout[-4000:] + r.stderr[-2000:])
        if tools:
            files = changed_files(tree)
            for name, cmd in (('ruff check', ['ruff', 'check', *files]),
                              ('ruff format --check', ['ruff', 'format', '--check', *files]),
                              ('pyright', ['pyright', *files])):
                version = _version(cmd[0], tree)
                want = RUFF if cmd[0] == 'ruff' else PYRIGHT
                if want not in version:
                    step(f'{name} {want} (spandrel\'s pin)', False, f'found {version or "none"}: '
                         f'pip install ruff=={RUFF} pyright=={PYRIGHT}')
                    continue
                r = _run(_tool(cmd), tree, env)
                step(f'{name} {want} on {len(files)} files: {_last_line(r.stdout + r.stderr)}', r.returncode == 0,
                     r.stdout[-3000:] + r.stderr[-2000:])
    print('all passed' if not failed else f'{len(failed)} failed: ' + '; '.join(failed))
    return 1 if failed else 0


def _tool(cmd: List[str]) -> List[str]:
    """A tool of this Python's environment (the test environment installs spandrel's pins)."""
    here = os.path.join(os.path.dirname(sys.executable), cmd[0])
    return [here if os.path.exists(here) else cmd[0], *cmd[1:]]


def _version(tool: str, cwd: str) -> str:
    try:
        return _run(_tool([tool, '--version']), cwd).stdout.strip()
    except OSError:
        return ''


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip(' =') if lines else ''


def main(argv: Sequence[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('action', choices=('make', 'check'))
    parser.add_argument('--spandrel', required=True, help='spandrel 0.4.2\'s source tree')
    parser.add_argument('--weights', required=True, help='the official team08_PFDN.pth')
    parser.add_argument('--no-tools', action='store_true', help='check: leave out ruff and pyright')
    args = parser.parse_args(argv)
    for path, what in ((os.path.join(args.spandrel, REGISTRY), 'spandrel\'s source tree'),
                       (args.weights, 'the official weights')):
        if not os.path.isfile(path):
            print(f'error: {path}: not found ({what}); pass --spandrel and --weights', file=sys.stderr)
            return 2
    if args.action == 'make':
        return make(args.spandrel, args.weights)
    return check(args.spandrel, args.weights, tools=not args.no_tools)


if __name__ == '__main__':
    sys.exit(main())
