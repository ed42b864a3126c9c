"""Losses: the layer-wise NCC loss."""
from .ncc_loss import NCCLoss, ncc_distance

__all__ = ['NCCLoss', 'ncc_distance']
