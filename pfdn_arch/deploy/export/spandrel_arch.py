"""Teach spandrel (the model loader of chaiNNer and ComfyUI) to load PFDN checkpoints.

spandrel ships no PFDN; it detects architectures by distinctive state-dict keys. ``register()`` adds a PFDN
``Architecture`` to spandrel's ``MAIN_REGISTRY`` (idempotent), after which ``spandrel.ModelLoader`` loads the
released ``team08_PFDN.pth`` and the files ``basicsr export`` writes (.pth and .safetensors)::

    import pfdn_arch.deploy.export.spandrel_arch as s; s.register()
    model = spandrel.ModelLoader().load_from_file('pfdn_x4.safetensors')

Detection, hyperparameters and the fusion of a training-form checkpoint are PFDN's spec's (``archs/pfdn/spec.py``).
"""
from typing import Any

from ...archs import PFDN_SPEC
from ...errors import require

ARCH_ID = 'PFDN'


def register() -> Any:
    """Add PFDN to spandrel's MAIN_REGISTRY (no-op when already there). Returns the registry."""
    spandrel = require('spandrel', 'loading PFDN through spandrel', 'export', 'spandrel')
    if ARCH_ID in spandrel.MAIN_REGISTRY:
        return spandrel.MAIN_REGISTRY

    base: Any = spandrel.Architecture  # spandrel is imported when asked for: its class is a value here

    class PFDNArch(base):
        def __init__(self):
            super().__init__(id=ARCH_ID, name='PFDN', detect=PFDN_SPEC.detect)

        def load(self, state_dict):
            net = PFDN_SPEC.build(state_dict, deploy=True)  # a training-form checkpoint is fused, exactly
            opts = PFDN_SPEC.hyperparameters(state_dict)
            return spandrel.ImageModelDescriptor(
                net, net.state_dict(), architecture=self, purpose='SR',
                tags=[f"{opts['num_feat']}nf", f"{opts['num_block']}nb"], supports_half=True,
                supports_bfloat16=True, scale=opts['upscale'], input_channels=opts['num_in_ch'],
                output_channels=opts['num_out_ch'],
                size_requirements=spandrel.SizeRequirements(minimum=PFDN_SPEC.min_input))

    # checked first: a generic architecture must not claim PFDN's keys
    before = tuple(a.architecture.id for a in spandrel.MAIN_REGISTRY.architectures())
    spandrel.MAIN_REGISTRY.add(spandrel.ArchSupport(PFDNArch(), PFDN_SPEC.detect, before=before))
    return spandrel.MAIN_REGISTRY
