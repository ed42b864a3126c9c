"""The architectures this package describes (``SPECS``), and how a caller finds the one it holds: by registry name,
by network, or by a state dict's keys."""
from typing import Mapping, Optional

import torch
from torch import nn

from ..errors import CheckpointError
from .pfdn.spec import PFDN_SPEC
from .spec import ArchSpec

SPECS = (PFDN_SPEC,)  # a second architecture: its spec module, and one entry here


def spec_named(name: str) -> Optional[ArchSpec]:
    """The spec of the architecture registered as ``name`` (``network_g.type``), or None for another one."""
    return next((s for s in SPECS if s.name == name), None)


def spec_for(net: nn.Module) -> Optional[ArchSpec]:
    """The spec of ``net``'s architecture, or None for one this package does not describe (BasicSR's own)."""
    return next((s for s in SPECS if isinstance(net, s.network)), None)


def spec_of(state_dict: Mapping[str, torch.Tensor]) -> ArchSpec:
    """The spec whose keys ``state_dict`` (bare) holds; CheckpointError saying what is missing otherwise."""
    found = next((s for s in SPECS if s.detect(state_dict)), None)
    if found is None:
        missing = SPECS[0].missing_keys(state_dict)
        raise CheckpointError(f"not a {SPECS[0].name} state dict: missing {', '.join(missing)}")
    return found
