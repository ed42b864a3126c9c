"""Models: the reparameterizing SR model BasicSR's train/test pipelines run (``pfdn_model``), its training step
(``train_step``) and its layer-wise NCC term (``ncc_teacher``). Needs basicsr."""
from .pfdn_model import PFDNModel

__all__ = ['PFDNModel']
