"""PFDN for ComfyUI: a custom-node folder. Linked or copied into ``ComfyUI/custom_nodes/``, its import adds PFDN to
spandrel's shared registry, so that ComfyUI's stock "Load Upscale Model" node loads PFDN checkpoints
(``team08_PFDN.pth`` and every ``.pth``/``.safetensors`` ``basicsr export`` writes, x2, x3 and x4) and "Upscale
Image (using Model)" runs them. It adds no node of its own.

ComfyUI imports this folder by path, as a module named after the folder, so the package is imported absolutely:
from ComfyUI's Python when pfdn is installed there, else from the folder this one lives in when it is a link into
an installed or checked-out pfdn (its real path leads there). Only torch is needed besides what ComfyUI has.
"""
import os
import sys

NODE_CLASS_MAPPINGS: dict = {}  # ComfyUI loads a custom node that exports this; PFDN needs no node of its own
NODE_DISPLAY_NAME_MAPPINGS: dict = {}


def _spandrel_arch():
    """``pfdn_arch.deploy.export.spandrel_arch``, found as the docstring says; ImportError saying what to do."""
    try:
        from pfdn_arch.deploy.export import spandrel_arch
        return spandrel_arch
    except ImportError:
        pass
    # this file's real place: <root>/pfdn_arch/comfyui_node/__init__.py, whatever the link in custom_nodes is called
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    if os.path.isfile(os.path.join(root, 'pfdn_arch', '__init__.py')) and root not in sys.path:
        sys.path.append(root)  # after ComfyUI's own paths: nothing of theirs is shadowed
    try:
        from pfdn_arch.deploy.export import spandrel_arch
    except ImportError as err:
        missing = getattr(err, 'name', None) or ''
        if missing and not missing.startswith('pfdn_arch') and os.path.isfile(
                os.path.join(root, 'pfdn_arch', '__init__.py')):
            # pfdn was found; a library it needs was not: name that, not pfdn
            raise ImportError(f'PFDN for ComfyUI found the pfdn package but not {missing.split(".")[0]}, which it '
                              f'needs: install it into the Python that runs ComfyUI (<that python> -m pip install '
                              f'{missing.split(".")[0]})') from None
        raise ImportError(f'PFDN for ComfyUI needs the pfdn package ({err}): link this folder from a pfdn install '
                          'or checkout instead of copying it, or install pfdn into the Python that runs ComfyUI '
                          "(<that python> -m pip install <pfdn folder or wheel>)") from None
    return spandrel_arch


_spandrel_arch().register()
