"""Architectures: what any described architecture offers (``spec.py``: ``ArchSpec``, the facts every caller asks),
the architectures described (``specs.py``), and PFDN in its own folder (``pfdn/``).

The names load on first use (PEP 562), so that ``archs.pfdn.limits`` (what an input must be) is importable without
torch:
``basicsr infer`` of a checkpoint the export cache knows runs without importing it (``deploy.runtime.build``).
"""
import importlib

_PUBLIC = {'ArchSpec': 'spec', 'ESA': 'pfdn.esa', 'MIN_INPUT_SIZE': 'pfdn.limits', 'PFDB': 'pfdn.pfdn_arch',
           'PFDN': 'pfdn.pfdn_arch', 'PFDN_SPEC': 'pfdn.spec', 'RRRB': 'pfdn.rrrb', 'SPECS': 'specs', 'SRNetwork': 'spec',
           'check_lr_input': 'pfdn.limits', 'fuse_rrrb': 'pfdn.rrrb', 'infer_pfdn_options': 'pfdn.spec',
           'spec_for': 'specs', 'spec_named': 'specs', 'spec_of': 'specs'}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'pfdn_arch.archs' has no attribute '{name}'")
    value = getattr(importlib.import_module(f'.{_PUBLIC[name]}', __name__), name)
    globals()[name] = value  # asked once
    return value
