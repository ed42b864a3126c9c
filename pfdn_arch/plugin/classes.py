"""What the plugin registers in BasicSR, in one list: (registry, module, class, whether the module imports basicsr
itself). ``registry.py`` registers them; ``hook.py`` watches the modules that import basicsr (they are registered
when their import completes). Plain data: the start-up hook reads it in every interpreter."""

CLASSES = (('ARCH_REGISTRY', 'pfdn_arch.archs.pfdn.pfdn_arch', 'PFDN', False),
           ('LOSS_REGISTRY', 'pfdn_arch.losses.ncc_loss', 'NCCLoss', False),
           ('DATASET_REGISTRY', 'pfdn_arch.data.paired_crop_dataset', 'PairedCropDataset', True),
           ('MODEL_REGISTRY', 'pfdn_arch.models.pfdn_model', 'PFDNModel', True),
           ('MODEL_REGISTRY', 'pfdn_arch.models.qat_model', 'PFDNQATModel', True))
NEEDS_BASICSR = frozenset(module for _, module, _, imports_basicsr in CLASSES if imports_basicsr)
