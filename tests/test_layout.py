"""The import graph as a contract: the rooms' layering (``.importlinter``, checked by import-linter) and no import
cycle between any two modules; both shown to fail when broken on purpose, so a later change that breaks them fails
CI."""
import os
import shutil
import subprocess
import sys

from conftest import ENV, ROOT

LINT = os.path.join(os.path.dirname(sys.executable), 'lint-imports')


def module_cycles(package='pfdn_arch'):
    """The import cycles among ``package``'s modules (imports inside functions included): the strongly connected
    components of more than one module in grimp's graph."""
    import grimp

    graph = grimp.build_graph(package)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(module):  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_the_rooms_keep_their_layering():
    proc = subprocess.run([LINT], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert 'Contracts: 2 kept, 0 broken.' in proc.stdout


def test_no_module_imports_itself_round_a_cycle():
    assert module_cycles() == []


def broken_copy(tmp_path, module, line):
    """A copy of the package and its contract with ``line`` appended to ``module`` (a path inside the package)."""
    shutil.copytree(os.path.join(ROOT, 'pfdn_arch'), tmp_path / 'pfdn_arch',
                    ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copy(os.path.join(ROOT, '.importlinter'), tmp_path / '.importlinter')
    with open(tmp_path / 'pfdn_arch' / module, 'a') as f:
        f.write(f'\n{line}\n')
    return dict(ENV, PYTHONPATH=str(tmp_path), PFDN_BASICSR_HOOK='0')


def test_the_contract_fails_when_a_room_imports_one_above_it(tmp_path):
    env = broken_copy(tmp_path, 'files/sources.py', 'from ..recipe import options  # noqa')
    proc = subprocess.run([LINT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and 'BROKEN' in proc.stdout
    assert 'pfdn_arch.files.sources -> pfdn_arch.recipe.options' in proc.stdout


def test_the_contract_fails_when_the_runtimes_import_the_media_above_them(tmp_path):
    env = broken_copy(tmp_path, 'deploy/runtime/tiles.py', 'from ..media import pipeline  # noqa')
    proc = subprocess.run([LINT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "deploy's rooms: media and export above runtime BROKEN" in proc.stdout
    assert 'pfdn_arch.deploy.runtime.tiles -> pfdn_arch.deploy.media.pipeline' in proc.stdout


def test_the_cycle_check_fails_on_a_cycle(tmp_path):
    env = broken_copy(tmp_path, 'files/atomic.py', 'from . import sources  # noqa')  # sources imports atomic
    code = ('import sys; sys.path.insert(0, sys.argv[1]); from test_layout import module_cycles; '
            'print(module_cycles())')
    proc = subprocess.run([sys.executable, '-c', code, os.path.join(ROOT, 'tests')], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "['pfdn_arch.files.atomic', 'pfdn_arch.files.sources']" in proc.stdout
