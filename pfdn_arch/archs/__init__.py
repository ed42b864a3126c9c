"""Architectures: the PFDN network, its building blocks, and its spec (the facts every caller asks).

The names load on first use (PEP 562), so that ``archs.limits`` (what an input must be) is importable without torch:
``basicsr infer`` of a checkpoint the export cache knows runs without importing it (``deploy.runtime.quick_start``).
"""
import importlib

_PUBLIC = {'ArchSpec': 'spec', 'ESA': 'esa', 'MIN_INPUT_SIZE': 'limits', 'PFDB': 'pfdn_arch', 'PFDN': 'pfdn_arch',
           'PFDN_SPEC': 'pfdn_spec', 'RRRB': 'rrrb', 'SPECS': 'specs', 'check_lr_input': 'limits',
           'fuse_rrrb': 'rrrb', 'infer_pfdn_options': 'pfdn_spec', 'spec_for': 'specs', 'spec_named': 'specs',
           'spec_of': 'specs'}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'pfdn_arch.archs' has no attribute '{name}'")
    value = getattr(importlib.import_module(f'.{_PUBLIC[name]}', __name__), name)
    globals()[name] = value  # asked once
    return value
