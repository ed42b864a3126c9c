"""Models: the reparameterizing SR model BasicSR's train/test pipelines run."""
from .pfdn_model import PFDNModel, TrainingDiverged

__all__ = ['PFDNModel', 'TrainingDiverged']
