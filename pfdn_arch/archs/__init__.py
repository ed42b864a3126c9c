"""Architectures: the PFDN network, its building blocks, and its spec (the facts every caller asks)."""
from .esa import ESA, MIN_INPUT_SIZE
from .pfdn_arch import PFDB, PFDN
from .pfdn_spec import PFDN_SPEC, infer_pfdn_options
from .rrrb import RRRB, fuse_rrrb
from .spec import ArchSpec
from .specs import SPECS, spec_for, spec_named, spec_of

__all__ = ['ArchSpec', 'ESA', 'MIN_INPUT_SIZE', 'PFDB', 'PFDN', 'PFDN_SPEC', 'RRRB', 'SPECS', 'fuse_rrrb',
           'infer_pfdn_options', 'spec_for', 'spec_named', 'spec_of']
