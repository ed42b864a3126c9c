"""How PFDN is quantized to int8, shared by post-training quantization (``ptq.py``) and the network
quantization-aware fine-tuning trains (``qat.py``): NNCF's settings, the CPU check that picks NNCF's overflow fix,
and the one check that the optional packages are there. The ops kept in float are the architecture's (its spec's
``float_ops``, docs/int8.md).
"""
import os
import sys
from typing import Any, Dict

from ....errors import require

# NNCF compiles its C++ quantizer extension the first time it quantizes a PyTorch network, and gives up after 60 s
# (ExtensionLoaderTimeoutException): on a busy fresh machine that took longer, and QAT and export --int8 died. The
# package's limit is 15 minutes, set before nncf is imported; a value the user set stays.
EXTENSION_TIMEOUT = ('NNCF_EXTENSION_LOAD_TIMEOUT', '900')


def need(module: str) -> Any:
    """``module`` (nncf, openvino, onnx) imported, or the error saying that int8 needs it. For nncf, its extension's
    build limit raised first (``EXTENSION_TIMEOUT``), and a note where it will be built now."""
    if module == 'nncf' and 'nncf' not in sys.modules:
        os.environ.setdefault(*EXTENSION_TIMEOUT)
        if not _extension_built():
            print('note: NNCF builds its C++ extension on first use (a minute or more; once per machine and torch '
                  'version)', file=sys.stderr)
    return require(module, 'int8', 'int8')


def _extension_built():
    """Whether NNCF's quantizer extension was built here for this torch (its build folder holds a library)."""
    try:
        import torch
        from torch.utils.cpp_extension import _get_build_directory
        folder = os.path.join(_get_build_directory('nncf/quantized_functions_cpu', verbose=False), torch.__version__)
    except Exception:  # torch's private helper moved: say nothing rather than something wrong
        return True
    return any(name.endswith('.so') for _, _, files in os.walk(folder) for name in files)


def has_int8_dot_products() -> bool:
    """Whether this CPU multiplies int8 with VNNI or AMX. Without (AVX2 alone), OpenVINO's int8 convolutions add
    pairs of u8 x s8 products in 16 bits, which saturate on 8-bit weights (what the released weights lose there:
    docs/int8.md). Linux tells by its CPU flags; elsewhere this says no."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = next((line.split(':', 1)[1].split() for line in f if line.startswith('flags')), [])
    except OSError:
        return False
    return bool({'avx512_vnni', 'avx_vnni', 'amx_int8'} & set(flags))


def settings() -> Dict[str, Any]:
    """NNCF's settings for PFDN (docs/int8.md): asymmetric activations (MIXED), ranges from histograms; weights in
    7 bits everywhere (NNCF's overflow fix) where this CPU lacks int8 dot products (far less lost there: docs/int8.md),
    else only in the first layer (NNCF's default)."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    return dict(preset=nncf.QuantizationPreset.MIXED,
                advanced_parameters=AdvancedQuantizationParameters(
                    activations_range_estimator_params=RangeEstimatorParametersSet.HISTOGRAM,
                    overflow_fix=OverflowFix.FIRST_LAYER if has_int8_dot_products() else OverflowFix.ENABLE))
