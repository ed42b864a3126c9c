"""Where the commands' defaults are, the same in an editable and in a normal install: the option files shipped with
the package (the repository's ``options/``, installed as ``pfdn_arch/options/``) and the released weights, which are
not shipped (``weights/team08_PFDN.pth`` under the working directory)."""
import os
import pathlib

from ..errors import OptionsError

WEIGHTS = os.path.join('weights', 'team08_PFDN.pth')
DEFAULT_SCHEDULE = os.path.join('options', 'schedule_pfdn_x4.yml')  # the five stages of the x4 recipe
WEIGHTS_SOURCE = "the PFDN authors' release, https://github.com/icandle/PFDN (team08_PFDN.pth, MIT)"


def shipped_options_dir():
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


def option_file(path):
    """``path`` when it exists (relative to the working directory); otherwise the shipped file of that name."""
    if os.path.isfile(path):
        return path
    shipped = shipped_options_dir()
    candidate = os.path.join(shipped, os.path.basename(path)) if shipped else None
    if candidate and os.path.isfile(candidate):
        return candidate
    raise OptionsError('options file not found' + (f' (the shipped ones are in {shipped})' if shipped else ''), path)


def default_weights():
    """The released weights at their usual place under the working directory, or None."""
    return WEIGHTS if os.path.isfile(WEIGHTS) else None


def missing_weights_reason():
    return (f'{WEIGHTS} is not under {os.getcwd()}: put team08_PFDN.pth ({WEIGHTS_SOURCE}) there')
