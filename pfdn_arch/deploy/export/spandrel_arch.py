"""Teach spandrel (the model loader of chaiNNer, ComfyUI, Forge and InvokeAI) to load PFDN checkpoints.

spandrel 0.4.2 ships no PFDN. ``register()`` adds to its ``MAIN_REGISTRY`` the very architecture this project
contributes upstream (``spandrel_pfdn``: the folder the patch in ``contrib/spandrel/`` adds as
``architectures/PFDN``; its detection, hyperparameters and network), after which ``spandrel.ModelLoader`` loads the
released ``team08_PFDN.pth`` and the files ``basicsr export`` writes (.pth and .safetensors)::

    import pfdn_arch.deploy.export.spandrel_arch as s; s.register()
    model = spandrel.ModelLoader().load_from_file('pfdn_x4.safetensors')

One addition of this package's own, since spandrel takes deployed weights only: a training-form checkpoint is fused
exactly (``archs/pfdn/convert.py``) and then loaded by the same architecture. Where spandrel already has a PFDN (a
release that merged the contribution), ``register()`` steps aside and changes nothing, so an app never sees two.
"""
from typing import Any

from ...archs.pfdn.convert import is_training_form, reparameterize_state_dict
from ...archs.pfdn.spec import PFDN_SPEC
from ...errors import require

ARCH_ID = 'PFDN'


def register() -> Any:
    """Add PFDN to spandrel's MAIN_REGISTRY unless it has one already. Returns the registry."""
    spandrel = require('spandrel', 'loading PFDN through spandrel', 'export', 'spandrel')
    if ARCH_ID in spandrel.MAIN_REGISTRY:  # spandrel's own (or this one, registered before)
        return spandrel.MAIN_REGISTRY
    from .spandrel_pfdn import PFDNArch  # imports spandrel's own classes: only once spandrel is there

    class PFDNWithTrainingForm(PFDNArch):
        """The contribution's PFDN, which also takes a training-form checkpoint by fusing it first."""

        def detect(self, state_dict: Any) -> bool:
            return super().detect(state_dict) or (PFDN_SPEC.detect(state_dict) and is_training_form(state_dict))

        def load(self, state_dict: Any) -> Any:
            if is_training_form(state_dict):
                state_dict = reparameterize_state_dict(dict(state_dict))
            return super().load(state_dict)

    arch = PFDNWithTrainingForm()
    # detected first: a generic architecture must not claim PFDN's keys (spandrel's own entry goes last; its
    # detection test shows no other claims them, but a newer generic entry could)
    before = tuple(a.architecture.id for a in spandrel.MAIN_REGISTRY.architectures())
    spandrel.MAIN_REGISTRY.add(spandrel.ArchSupport(arch, arch.detect, before=before))
    return spandrel.MAIN_REGISTRY
