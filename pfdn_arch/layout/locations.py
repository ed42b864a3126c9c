"""Where the commands' defaults are, the same in an editable and in a normal install: the option files shipped with
the package (the repository's ``options/``, installed as ``pfdn_arch/options/``) and the released weights, which are
not shipped (``weights/team08_PFDN.pth`` under the working directory)."""
import os
import pathlib
from typing import Optional

from ..errors import OptionsError

WEIGHTS = os.path.join('weights', 'team08_PFDN.pth')
DEFAULT_SCHEDULE = os.path.join('options', 'schedule_pfdn_x4.yml')  # the five stages of the x4 recipe
WEIGHTS_SOURCE = "the PFDN authors' release, https://github.com/icandle/PFDN (team08_PFDN.pth, MIT)"
WEIGHTS_URL = 'https://github.com/icandle/PFDN/raw/main/model_zoo/team08_PFDN.pth'
# the released file's SHA-256 (1,114,079 bytes): how infer and test tell the released weights from others
WEIGHTS_SHA256 = '3d97f28bcd6185adb91a9ca8ef147f8f13f523786ff19c3c7e10ee0617f4d707'


def shipped_options_dir() -> Optional[str]:
    """The folder of the shipped option files, or None: the installed ``pfdn_arch/options/``, else, where the package
    is imported from a checkout on ``PYTHONPATH`` without being installed from it (the route a machine without a
    package index takes, as the GPU run does: bench/gpu/run.sh), the checkout's own ``options/``."""
    from importlib import resources

    candidates = []
    for anchor, sub in (('pfdn_arch.options', None), ('pfdn_arch', 'options')):
        try:
            folder = resources.files(anchor)
        except ModuleNotFoundError:
            continue
        candidates.append(folder / sub if sub else folder)
    checkout = pathlib.Path(__file__).resolve().parents[2]
    if (checkout / 'setup.py').is_file():  # a checkout only: never a stray options/ beside site-packages
        candidates.append(checkout / 'options')
    for folder in candidates:
        if folder.is_dir() and any(str(p).endswith('.yml') for p in folder.iterdir()):
            return str(folder)
    return None


def option_file(path: str) -> str:
    """``path`` when it exists (relative to the working directory); otherwise the shipped file of that name."""
    if os.path.isfile(path):
        return path
    shipped = shipped_options_dir()
    candidate = os.path.join(shipped, os.path.basename(path)) if shipped else None
    if candidate and os.path.isfile(candidate):
        return candidate
    raise OptionsError('options file not found' + (f' (the shipped ones are in {shipped})' if shipped else ''), path)


def default_weights() -> Optional[str]:
    """The released weights at their usual place under the working directory, or None."""
    return WEIGHTS if os.path.isfile(WEIGHTS) else None


def is_released(path: str) -> bool:
    """Whether ``path`` is the released weights file, by its size and SHA-256 (not its name)."""
    from ..files.sources import digest

    return os.path.getsize(path) == 1114079 and digest(path) == WEIGHTS_SHA256


def describe_weights(path: str) -> str:
    """What ``infer`` and ``test`` say of the weights they run: the path, and whether it is the released file."""
    if path.lower().endswith(('.xml', '.onnx', '.param')):
        return f'{path} (a model file from basicsr export)'
    return f"{path} ({'the released PFDN x4 weights' if is_released(path) else 'not the released file'})"


def missing_weights_reason() -> str:
    return (f'{WEIGHTS} is not under {os.getcwd()}: get the released weights with mkdir -p weights && curl -L -o '
            f'{WEIGHTS} {WEIGHTS_URL}')
