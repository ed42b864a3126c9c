"""Teach spandrel (the model loader of chaiNNer and ComfyUI) to load PFDN checkpoints.

spandrel ships no PFDN; it detects architectures by distinctive state-dict keys. ``register()`` adds a PFDN
``Architecture`` to spandrel's ``MAIN_REGISTRY`` (idempotent), after which ``spandrel.ModelLoader`` loads the
released ``team08_PFDN.pth`` and the files ``basicsr export`` writes (.pth and .safetensors)::

    import pfdn_arch.deploy.spandrel_arch as s; s.register()
    model = spandrel.ModelLoader().load_from_file('pfdn_x4.safetensors')
"""
from ..archs.esa import MIN_INPUT_SIZE
from ..archs.convert import infer_pfdn_options, reparameterize_state_dict

ARCH_ID = 'PFDN'
# keys only a PFDN has: the ESA's conv_f inside block1, the partial conv3, and the tail conv
DETECT_KEYS = ('conv_first.weight', 'block1.attn.conv_f.weight', 'block1.attn.conv4.weight', 'conv_last.weight',
               'tail.0.weight')


def _detect(state_dict):
    return all(k in state_dict for k in DETECT_KEYS) and (
        'block1.conv3.rep_conv.weight' in state_dict or 'block1.conv3.expand_conv.weight' in state_dict)


def register():
    """Add PFDN to spandrel's MAIN_REGISTRY (no-op when already there). Returns the registry."""
    from spandrel import MAIN_REGISTRY, Architecture, ArchSupport, ImageModelDescriptor, SizeRequirements

    from ..archs import PFDN

    if ARCH_ID in MAIN_REGISTRY:
        return MAIN_REGISTRY

    class PFDNArch(Architecture):
        def __init__(self):
            super().__init__(id=ARCH_ID, name='PFDN', detect=_detect)

        def load(self, state_dict):
            opts = infer_pfdn_options(state_dict)
            if not opts['deploy']:  # a training-form checkpoint: fuse it, exactly
                state_dict = reparameterize_state_dict(state_dict)
            opts['deploy'] = True
            model = PFDN(**opts)
            model.load_state_dict(state_dict, strict=True)
            return ImageModelDescriptor(model, state_dict, architecture=self, purpose='SR',
                                        tags=[f"{opts['num_feat']}nf", f"{opts['num_block']}nb"],
                                        supports_half=True, supports_bfloat16=True, scale=opts['upscale'],
                                        input_channels=opts['num_in_ch'], output_channels=opts['num_out_ch'],
                                        size_requirements=SizeRequirements(minimum=MIN_INPUT_SIZE))

    # checked first: a generic architecture must not claim PFDN's keys
    before = tuple(a.architecture.id for a in MAIN_REGISTRY.architectures())
    MAIN_REGISTRY.add(ArchSupport(PFDNArch(), _detect, before=before))
    return MAIN_REGISTRY
