"""An import hook that plugs pfdn into BasicSR without importing either on the spot.

BasicSR's registries are filled by whoever imports the registered classes, and PyPI's basicsr 1.4.2 does not even
import on today's torchvision. ``install()`` puts a finder at the front of ``sys.meta_path`` that watches a few
module names and nothing else:

- ``basicsr``: the compatibility layer is applied before basicsr's own code runs, and pfdn's classes are registered
  as soon as basicsr's package code has run (``registry.register_all``);
- the pfdn modules whose classes subclass or use BasicSR (``NEEDS_BASICSR``): registered when their import
  completes, so importing one of them first (which is what imports basicsr) still registers it.

The finder costs nothing for other imports (a set lookup), and no import of torch or basicsr happens until the
process imports basicsr itself. Duck-typed (no ``importlib.abc``): the start-up hook runs it in every interpreter.
"""
from __future__ import annotations

import sys

from .classes import NEEDS_BASICSR  # the modules that import basicsr themselves

_state = {'basicsr_ready': False}


def install() -> None:
    """Watch for basicsr; hook up at once if it is already imported. Idempotent."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    if sys.modules.get('basicsr') is not None and not _state['basicsr_ready']:
        from . import compat
        compat.prepare_import()
        basicsr_imported()


def basicsr_imported() -> None:
    """Everything that needs basicsr's package code to have run: the shims for its functions (``python -m
    basicsr.train|test`` among them), then registration. Runs once."""
    if _state['basicsr_ready']:
        return
    _state['basicsr_ready'] = True
    from . import compat, registry
    compat.patch_basicsr()
    registry.register_all()


class _Finder:
    """Finds nothing itself: for the watched names it asks the other finders and wraps the loader they return."""

    def find_spec(self, name, path=None, target=None):
        if name == 'basicsr':
            # the shims run before basicsr/__init__.py does (it imports a torchvision module that is gone), and only
            # when basicsr is really imported, not when someone merely asks whether it is installed
            before, after = _prepare_basicsr, basicsr_imported
        elif name in NEEDS_BASICSR:
            before, after = None, _register_if_ready
        else:
            return None
        spec = _find_elsewhere(self, name, path, target)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, 'exec_module'):
            spec.loader = _Around(spec.loader, before, after)
        return spec


def _find_elsewhere(me, name, path, target):
    for finder in sys.meta_path:
        find = getattr(finder, 'find_spec', None)
        if finder is not me and find is not None:
            spec = find(name, path, target)
            if spec is not None:
                return spec
    return None


def _prepare_basicsr():
    from . import compat
    compat.prepare_import()


def _register_if_ready():
    if _state['basicsr_ready']:
        from . import registry
        registry.register_all()


class _Around:
    """A loader that runs ``before()``, the real loader, then ``after()``; everything else is the real loader's."""

    def __init__(self, loader, before, after):
        self._loader, self._before, self._after = loader, before, after

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        if self._before is not None:
            self._before()
        self._loader.exec_module(module)
        self._after()

    def __getattr__(self, name):  # get_code, get_source, is_package, get_filename, ... for tools that ask
        return getattr(self._loader, name)
