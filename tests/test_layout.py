"""The house's contracts: the rooms' layering (``.importlinter``, checked by import-linter), no import cycle between
any two modules, hints on every public function and the type checker (``mypy.ini``, nothing left out) passing; each
shown to fail when broken on purpose, so a later change that breaks them fails CI."""
import ast
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
    env = broken_copy(tmp_path, 'files/sources.py', 'from ..checks import options  # noqa')
    proc = subprocess.run([LINT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and 'BROKEN' in proc.stdout
    assert 'pfdn_arch.files.sources -> pfdn_arch.checks.options' in proc.stdout


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


# ------------------------------------------------------------------------------------------------------------ types
MYPY = os.path.join(os.path.dirname(sys.executable), 'mypy')


def unhinted(root):
    """'file:line name' of each public function or method under ``root`` without a hint on every argument and its
    return (``__init__`` needs none on its return)."""
    found = []
    for folder, _, files in os.walk(root):
        for name in sorted(f for f in files if f.endswith('.py')):
            path = os.path.join(folder, name)
            with open(path) as f:
                tree = ast.parse(f.read())
            nodes = list(tree.body) + [n for c in tree.body if isinstance(c, ast.ClassDef) and not c.name.startswith('_')
                                       for n in c.body]
            for node in nodes:
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                if node.name.startswith('_') and node.name != '__init__':
                    continue
                args = [a for a in node.args.args + node.args.kwonlyargs if a.arg not in ('self', 'cls')]
                if any(a.annotation is None for a in args) or (node.returns is None and node.name != '__init__'):
                    found.append(f'{os.path.relpath(path, ROOT)}:{node.lineno} {node.name}')
    return found


def test_every_public_function_has_hints():
    assert unhinted(os.path.join(ROOT, 'pfdn_arch')) == []


def test_the_type_checker_leaves_nothing_out():
    """mypy checks every room with the same settings: no error code is switched off anywhere."""
    with open(os.path.join(ROOT, 'mypy.ini')) as f:
        settings = f.read()
    assert 'disable_error_code' not in settings and '[mypy-pfdn_arch' not in settings


def test_the_hint_check_finds_a_function_without_them(tmp_path):
    (tmp_path / 'm.py').write_text('def f(x) -> int:\n    return x\n\n\nclass A:\n    def g(self, y: int):\n'
                                   '        return y\n\n    def _h(self, z):\n        return z\n')
    assert [f.split(' ')[-1] for f in unhinted(str(tmp_path))] == ['f', 'g']


def test_the_type_checker_passes():
    proc = subprocess.run([MYPY], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert 'Success: no issues found' in proc.stdout


def test_the_type_checker_fails_on_a_wrong_call(tmp_path):
    """A call against the package's hints, checked with the package's own settings (and mypy's cache of it)."""
    (tmp_path / 'wrong.py').write_text('from pfdn_arch.cli.infer import weights_or_default\n\n\n'
                                       'def broken() -> str:\n    return weights_or_default(3)\n')
    proc = subprocess.run([MYPY, '--config-file', os.path.join(ROOT, 'mypy.ini'), str(tmp_path / 'wrong.py')],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and 'weights_or_default' in proc.stdout, proc.stdout[-2000:]


# ---------------------------------------------------------------------------------------- BasicSR left as it is
def replacements_of_basicsr(root):
    """'file:line' of each assignment to an attribute of something imported from basicsr (a function, class or
    module replaced), and of each frame inspection, in the package outside ``plugin/compat.py``."""
    found = []
    for folder, _, files in os.walk(root):
        for name in sorted(f for f in files if f.endswith('.py')):
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if rel == os.path.join('plugin', 'compat.py'):
                continue
            with open(path) as f:
                text = f.read()
            tree = ast.parse(text)
            imported = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    imported |= {a.asname or a.name.split('.')[0] for a in node.names if a.name.startswith('basicsr')}
                elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('basicsr'):
                    imported |= {a.asname or a.name for a in node.names}
            for node in ast.walk(tree):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                    node, (ast.AugAssign, ast.AnnAssign)) else []
                for target in targets:
                    base = target
                    while isinstance(base, (ast.Attribute, ast.Subscript)):
                        base = base.value
                    if isinstance(target, ast.Attribute) and isinstance(base, ast.Name) and base.id in imported:
                        found.append(f'{rel}:{node.lineno}')
            found += [f'{rel}:{i + 1} frame inspection' for i, line in enumerate(text.splitlines())
                      if '_getframe' in line]
    return found


def test_nothing_outside_compat_replaces_a_piece_of_basicsr():
    assert replacements_of_basicsr(os.path.join(ROOT, 'pfdn_arch')) == []


def test_the_replacement_check_finds_a_patch(tmp_path):
    (tmp_path / 'm.py').write_text('import basicsr.train as train\nfrom basicsr.utils import options\n\n\n'
                                   'def f():\n    train.build_model = None\n    options.parse_options.x = 1\n')
    assert replacements_of_basicsr(str(tmp_path)) == ['m.py:6', 'm.py:7']
