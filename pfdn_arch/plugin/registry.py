"""pfdn's classes in BasicSR's registries: ``PFDN`` (arch), ``NCCLoss`` (loss), ``PairedCropDataset`` (dataset),
``PFDNModel`` and ``PFDNQATModel`` (models). The classes themselves know nothing of BasicSR's registries: they are
registered here.

A name someone else has taken is theirs. BasicSR's registry asserts on a second registration of a name, which would
crash deep inside BasicSR whichever side came second; so:

- a name already registered (say, a ``PFDN`` the user's BasicSR checkout defines in ``basicsr/archs``) keeps its
  class, and pfdn's is not registered, with one note saying so;
- a class registered later under one of pfdn's names (user code that defines its own ``PFDN`` after basicsr is
  imported) replaces pfdn's, with one note saying so (``compat._later_registrations_replace_ours``: BasicSR's
  registry would assert).
"""
from __future__ import annotations

import importlib
import sys
from typing import Any, Set

from .classes import CLASSES

_noted: Set[str] = set()


def register_all() -> None:
    """Register every class whose module can be imported now (idempotent), in ``CLASSES`` order, up to a module that
    is itself being imported."""
    import basicsr.utils.registry as registries

    for registry_name, module_name, class_name, _ in CLASSES:
        module = sys.modules.get(module_name)
        if module is not None and not hasattr(module, class_name):
            # being imported (it imported basicsr, which brought us here): the modules after it may import it
            # (qat_model imports pfdn_model), so they wait too; the hook calls this again when its import completes
            break
        cls = getattr(importlib.import_module(module_name), class_name, None)
        if cls is not None:
            add(getattr(registries, registry_name), cls)


def ours(obj: object) -> bool:
    return getattr(obj, '__module__', '').split('.')[0] == 'pfdn_arch'


def add(registry: Any, cls: type) -> None:
    """Register ``cls`` under its name unless the name is taken; a taken name is noted once."""
    name = cls.__name__
    taken = registry._obj_map.get(name)
    if taken is cls:
        return
    if taken is not None:
        note(f"BasicSR's {registry._name} registry already has a {name} ({taken.__module__}); pfdn's {name} was not "
              f'registered, so {name} in your options means that one (pfdn_arch.{name} is still importable)')
        return
    registry.register(cls)


def note(message: str) -> None:
    if message not in _noted:
        _noted.add(message)
        print(f'note: {message}', file=sys.stderr)
