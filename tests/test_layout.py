"""The house's contracts: the rooms' layering (``.importlinter``, checked by import-linter), no import cycle between
any two modules, hints on every public function and the type checker (``mypy.ini``, nothing left out) passing; each
shown to fail when broken on purpose, so a later change that breaks them fails CI."""
import ast
import re
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


# ------------------------------------------------------------------------------------ names in docs and comments
DOCS = ['README.md', 'setup.py', '.importlinter', 'mypy.ini', os.path.join('.ci', 'run')]
SOURCE_ROOTS = ('pfdn_arch', 'tests', 'bench', 'options')
# a path of the project's own: its top folder, or a module path inside the package
OWN_PATH = re.compile(r'(?<![\w./-])((?:pfdn_arch|tests|docs|bench|options|\.ci)/[\w./-]*[\w]|'
                      r'(?:archs|cli|checks|data|deploy|evaluation|files|layout|losses|models|plugin|runs|schedule|'
                      r'runtime|media|export|int8|video|pfdn)/[\w/]*\.py)(?:::(\w+))?')
TICKED = re.compile(r'`{1,2}([A-Za-z_][\w.]*)(?:\(\))?`{1,2}')


def _texts(root):
    """(file, text) of every place the project names its own parts: the docs, and the comments and docstrings of its
    code."""
    import io
    import tokenize
    out = [(p, open(os.path.join(root, p)).read()) for p in DOCS if os.path.isfile(os.path.join(root, p))]
    out += [(os.path.join('docs', n), open(os.path.join(root, 'docs', n)).read())
            for n in sorted(os.listdir(os.path.join(root, 'docs'))) if n.endswith('.md')]
    for top in SOURCE_ROOTS:
        for folder, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(f for f in files if f.endswith('.py')):
                path = os.path.join(folder, name)
                with open(path) as f:
                    source = f.read()
                said = []
                for tok in tokenize.generate_tokens(io.StringIO(source).readline):
                    if tok.type == tokenize.COMMENT:
                        said.append(tok.string)
                tree = ast.parse(source)
                for node in ast.walk(tree):
                    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                        doc = ast.get_docstring(node, clean=False)
                        if doc:
                            said.append(doc)
                out.append((os.path.relpath(path, root), '\n'.join(said)))
    return out


def _module_names(root):
    """{module file stem: set of the names it defines or imports, and its classes' attributes and methods}."""
    names = {}
    for folder, _, files in os.walk(os.path.join(root, 'pfdn_arch')):
        for name in (f for f in files if f.endswith('.py')):
            with open(os.path.join(folder, name)) as f:
                tree = ast.parse(f.read())
            stem = 'pfdn_arch' if name == '__init__.py' and folder.endswith('pfdn_arch') else (
                os.path.basename(folder) if name == '__init__.py' else name[:-3])
            found = names.setdefault(stem, set())
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    found.add(node.name)
                elif isinstance(node, (ast.Import, ast.ImportFrom)):
                    found |= {(a.asname or a.name).split('.')[0] for a in node.names}
                elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                    for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                        for t in ast.walk(target):
                            if isinstance(t, ast.Name):
                                found.add(t.id)
                            elif isinstance(t, ast.Attribute):
                                found.add(t.attr)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
                    found.add(node.value)  # names given as text (PEP 562 tables, registries)
    return names


def _tests_defined(root):
    found = set()
    for name in os.listdir(os.path.join(root, 'tests')):
        if name.endswith('.py'):
            with open(os.path.join(root, 'tests', name)) as f:
                found |= {n.name for n in ast.walk(ast.parse(f.read())) if isinstance(n, ast.FunctionDef)}
    return found


def _variables(root):
    """The names the package's code gives its variables and arguments: ``runner.refresh`` or ``train.amp`` in a
    comment reads as a variable's attribute or a yml key, not as the module of that name."""
    found = set()
    for folder, _, files in os.walk(os.path.join(root, 'pfdn_arch')):
        for name in (f for f in files if f.endswith('.py')):
            with open(os.path.join(folder, name)) as f:
                for node in ast.walk(ast.parse(f.read())):
                    if isinstance(node, ast.arg):
                        found.add(node.arg)
                    elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                        found.add(node.id)
    return found


FILE_NAME = re.compile(r'.*\.(py|md|mdb|json|yml|yaml|txt|png|pth|onnx|param|bin|xml|lmdb|sh|patch)$')
# not the project's own, though they look like it: BasicSR's docs, spandrel's tree and tests, what the benches write,
# the options folder as installed (``options/`` ships as ``pfdn_arch/options``)
NOT_OURS = re.compile(r"(BasicSR's|spandrel's)\s+`?$")
INSTALLED_AS = {'pfdn_arch/options': 'options'}


def stale_names(root):
    """'file: name' of each path, module, function or test the docs and the code's comments name that does not exist:
    a path of the project's own (under pfdn_arch, tests, docs, bench, options, or a module path inside the package),
    a dotted name in backticks whose first part is one of the package's modules (not a name its code uses for
    variables), down its modules to the name it must define, and a test named after its file or alone in
    backticks."""
    modules, tests, variables = _module_names(root), _tests_defined(root), _variables(root)
    stale = []
    for where, text in _texts(root):
        here = os.path.dirname(where)
        for m in OWN_PATH.finditer(text):
            path, test = m[1].rstrip('.'), m[2]
            if NOT_OURS.search(text[max(0, m.start() - 12):m.start()]) or path.startswith('bench/out'):
                continue
            path = INSTALLED_AS.get(path, path)
            candidates = [os.path.join(root, path), os.path.join(root, 'pfdn_arch', path),
                          os.path.join(root, 'pfdn_arch', 'deploy', path), os.path.join(root, here, path)]
            if not any(os.path.exists(c) for c in candidates) and not glob_like(path):
                stale.append(f'{where}: {path}')
            elif test and test not in tests:
                stale.append(f'{where}: {path}::{test}')
        for m in TICKED.finditer(text):
            name = m[1]
            if FILE_NAME.fullmatch(name) or NOT_OURS.search(text[max(0, m.start() - 12):m.start() + 1]):
                continue  # a file's name: its paths are checked above
            parts = name.split('.')
            if parts[0] == 'pfdn_arch':
                parts = parts[1:] or ['pfdn_arch']
            elif parts[0] in variables:
                continue
            if len(parts) == 1:
                if parts[0].startswith('test_') and parts[0] not in tests and \
                        not os.path.exists(os.path.join(root, 'tests', parts[0] + '.py')):
                    stale.append(f'{where}: {name}')
                continue
            if parts[0] not in modules:
                if name.startswith('pfdn_arch.'):
                    stale.append(f'{where}: {name}')
                continue
            while len(parts) > 1 and parts[1] in modules:
                parts = parts[1:]  # a dotted module path: down to its last module
            if len(parts) > 1 and parts[1] not in modules[parts[0]]:
                stale.append(f'{where}: {name}')
    return sorted(set(stale))


def glob_like(path):
    return any(c in path for c in '*<>')


def test_every_module_file_and_test_the_docs_and_comments_name_exists():
    assert stale_names(ROOT) == []


def test_the_stale_name_check_finds_a_name_that_went(tmp_path):
    for part in ('pfdn_arch', 'tests', 'docs'):
        (tmp_path / part).mkdir()
    (tmp_path / 'pfdn_arch' / '__init__.py').write_text('')
    (tmp_path / 'pfdn_arch' / 'convert.py').write_text('def checkpoint_filter():\n    pass\n')
    (tmp_path / 'tests' / 'test_a.py').write_text('def test_here():\n    pass\n')
    (tmp_path / 'docs' / 'x.md').write_text('see ``convert.checkpoint_filter``, ``convert.gone``, `test_here`, '
                                             '`test_gone`, pfdn_arch/convert.py, tests/test_b.py, '
                                             'tests/test_a.py::test_gone\n')
    assert stale_names(str(tmp_path)) == ['docs/x.md: convert.gone', 'docs/x.md: test_gone',
                                          'docs/x.md: tests/test_a.py::test_gone', 'docs/x.md: tests/test_b.py']
