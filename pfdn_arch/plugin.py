"""How ``import pfdn_arch`` plugs into BasicSR without importing it (and torch) on the spot.

BasicSR's registries are filled by importing the modules that define the registered classes. ``install()`` does it
as soon as BasicSR is there: at once if ``basicsr`` was already imported, otherwise right after the first
``import basicsr`` anywhere in the process, through an import hook that also applies the compatibility layer
(``compat``) *before* basicsr's own code runs. So ``import pfdn_arch`` stays cheap (the command line's help answers
in a fraction of a second), and anything that reaches BasicSR afterwards (``build_network({'type': 'PFDN'})``,
``basicsr.train.train_pipeline``, a DataLoader worker unpickling a dataset) finds PFDN registered and basicsr 1.4.2
working on today's stack.
"""
import importlib.abc
import importlib.util
import sys

_DONE = False


def register():
    """Import the modules whose import registers PFDN's pieces in BasicSR's registries (idempotent)."""
    global _DONE
    if _DONE:
        return
    _DONE = True
    from . import compat
    compat.patch_basicsr()
    from .archs import pfdn_arch  # noqa: F401  ARCH_REGISTRY: PFDN
    from .data import paired_crop_dataset  # noqa: F401  DATASET_REGISTRY: PairedCropDataset
    from .losses import ncc_loss  # noqa: F401  LOSS_REGISTRY: NCCLoss
    from .models import pfdn_model  # noqa: F401  MODEL_REGISTRY: PFDNModel


class _RegisterAfter(importlib.abc.Loader):
    """basicsr's own loader, followed by ``register()`` once basicsr's package code has run."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        register()


class _BasicsrImportHook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != 'basicsr':
            return None
        sys.meta_path.remove(self)  # once; and the lookup below must not come back here
        from . import compat
        compat.prepare_import()
        spec = importlib.util.find_spec('basicsr')
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisterAfter(spec.loader)
        return spec


def install():
    """Register now if basicsr is imported, else as soon as it is."""
    if 'basicsr' in sys.modules:
        from . import compat
        compat.prepare_import()
        register()
    elif not any(isinstance(f, _BasicsrImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _BasicsrImportHook())
