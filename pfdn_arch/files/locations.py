"""Where the commands' defaults are, the same in an editable and in a normal install: the option files shipped with
the package (the repository's ``options/``, installed as ``pfdn_arch/options/``) and the released weights, which are
not shipped (``weights/team08_PFDN.pth`` under the working directory)."""
import os

from ..errors import OptionsError

WEIGHTS = os.path.join('weights', 'team08_PFDN.pth')
DEFAULT_SCHEDULE = os.path.join('options', 'schedule_pfdn_x4.yml')  # the five stages of the x4 recipe
WEIGHTS_SOURCE = "the PFDN authors' release, https://github.com/icandle/PFDN (team08_PFDN.pth, MIT)"


def shipped_options_dir():
    """The folder of the shipped option files, or None."""
    from importlib import resources

    for anchor, sub in (('pfdn_arch.options', None), ('pfdn_arch', 'options')):
        try:
            folder = resources.files(anchor)
        except ModuleNotFoundError:
            continue
        folder = folder / sub if sub else folder
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
