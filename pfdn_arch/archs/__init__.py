"""Architectures: the PFDN network and its building blocks."""
from .esa import ESA, MIN_INPUT_SIZE
from .pfdn_arch import PFDB, PFDN
from .rrrb import RRRB, fuse_rrrb

__all__ = ['ESA', 'MIN_INPUT_SIZE', 'PFDB', 'PFDN', 'RRRB', 'fuse_rrrb']
