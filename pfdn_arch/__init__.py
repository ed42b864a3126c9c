"""PFDN for BasicSR.

``import pfdn_arch`` plugs the package into BasicSR (``plugin``): BasicSR 1.4.2 is made to work on today's
Python/torch/torchvision (``plugin.compat``), and the ``PFDN`` arch, the ``NCCLoss`` loss, the ``PFDNModel`` and the
``PairedCropDataset`` are registered in BasicSR's registries as soon as BasicSR is imported (at once if it already
is). The start-up hook installed with the package does this import in every interpreter, so BasicSR's own entry
points need no import in user code. The import itself stays light: torch and BasicSR load when something here or in
BasicSR is used.
"""
from . import console, plugin
from .version import __version__

plugin.install()
if console.started_as_command():  # Ctrl-C handled from here on, in a process started for a command only
    from . import stopping

    stopping.handle_signals()

# the public names, loaded on first use (PEP 562): importing them imports torch and BasicSR
_PUBLIC = {'PFDN': 'archs', 'RRRB': 'archs', 'NCCLoss': 'losses', 'PFDNModel': 'models',
           'PairedCropDataset': 'data.paired_crop_dataset', 'infer_pfdn_options': 'archs',
           'reparameterize_state_dict': 'archs.pfdn.convert', 'reparameterized': 'archs.pfdn.convert'}
__all__ = sorted(_PUBLIC) + ['__version__']


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'pfdn_arch' has no attribute '{name}'")
    import importlib
    return getattr(importlib.import_module(f'.{_PUBLIC[name]}', __name__), name)
