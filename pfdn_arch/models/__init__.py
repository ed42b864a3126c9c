"""Models: the reparameterizing SR model BasicSR's train/test pipelines run (``pfdn_model``), its training step
(``train_step``), its layer-wise NCC term (``ncc_teacher``), and quantization-aware fine-tuning for int8
(``qat_model``). Needs basicsr."""
from .pfdn_model import PFDNModel
from .qat_model import PFDNQATModel

__all__ = ['PFDNModel', 'PFDNQATModel']
