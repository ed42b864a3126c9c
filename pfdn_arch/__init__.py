"""PFDN for BasicSR.

Importing this package (1) makes PyPI basicsr 1.4.2 work on today's Python/torch/torchvision (``compat``) and
(2) registers, through BasicSR's own registries, the ``PFDN`` arch, the ``NCCLoss`` loss, the ``PFDNModel`` and the
``PairedCropDataset`` (training crops from decoded LMDBs at next to no cost per sample).
"""
from . import compat

compat.apply()  # must precede the first `import basicsr`

from .archs import PFDN, RRRB  # noqa: E402  (registers PFDN in ARCH_REGISTRY)
from .archs.reparam import infer_pfdn_options, reparameterize_state_dict  # noqa: E402
from .losses import NCCLoss  # noqa: E402  (registers NCCLoss in LOSS_REGISTRY)
from .models import PFDNModel  # noqa: E402  (registers PFDNModel in MODEL_REGISTRY)
from .data.paired_crop_dataset import PairedCropDataset  # noqa: E402  (registers it in DATASET_REGISTRY)

__version__ = '0.1.0'
__all__ = ['NCCLoss', 'PFDN', 'PFDNModel', 'PairedCropDataset', 'RRRB', 'infer_pfdn_options', 'reparameterize_state_dict', '__version__']
