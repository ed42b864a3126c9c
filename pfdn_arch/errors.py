"""The errors that mean "the input was wrong", as values: each carries what went wrong (``reason``) and what it is
about (``path``: a file, a folder or an option), never to be parsed back out of a message. The command line alone
turns them into one ``error: ...`` line, and adds which of its flags would help (``cli/main.py``)."""
from typing import Any, Optional



class PFDNError(Exception):
    """Bad input: ``reason`` says what is wrong (and, where no flag is involved, what to do); ``path`` names the file,
    folder or option concerned, or is None."""

    def __init__(self, reason: str, path: Any = None):
        super().__init__(reason)
        self.reason = reason
        self.path = None if path is None else str(path)

    def __str__(self):
        if not self.path:
            return self.reason
        # a name with a line break, a ': ' or edge spaces would garble a one-line message: quoted, escapes shown
        plain = self.path.isprintable() and ': ' not in self.path and self.path == self.path.strip()
        return f"{self.path if plain else repr(self.path)}: {self.reason}"


class CheckpointError(PFDNError):
    """A weights or training-state file that cannot be used (unreadable, unsafe, non-finite, not this network)."""


class ImageError(PFDNError):
    """An image file that cannot be used; ``path`` is the image."""


class OptionsError(PFDNError):
    """An options file (yml) or a command-line option that cannot work; ``path`` is the option's name or the yml."""


class DataError(PFDNError):
    """A dataset, an LMDB or a data folder that cannot be used."""


class OutputExists(PFDNError):
    """``path`` exists and would be replaced; nothing was written. The command line says how to allow it."""

    def __init__(self, path: Any, reason: str = 'exists and would be replaced'):
        super().__init__(reason, path)


class NotInstalled(PFDNError):
    """An optional package is missing: ``package``, and the extra of this package that installs it."""

    def __init__(self, package: str, purpose: str, extra: Optional[str] = None):
        install = f"pip install 'pfdn[{extra}]'" if extra else f'pip install {package}'
        super().__init__(f'{purpose} needs the {package} package: {install}')
        self.package, self.extra = package, extra


class TrainingDiverged(PFDNError):
    """The loss became NaN or Inf; the step was not applied and saved checkpoints are untouched."""


class NotEnoughMemory(PFDNError):
    """An image too large to upscale (whole, or in tiles of the size asked) in the memory there is."""


def installed(module: str) -> bool:
    """Whether an optional package is there (found, not imported). With ``require``, the one way optional packages
    are checked."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, purpose: str, extra: Optional[str] = None, package: Optional[str] = None) -> Any:
    """``module`` imported, or NotInstalled naming what needs it (``purpose``) and the extra of this package that
    installs it (``package``: its name on PyPI where that differs from the module's)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise NotInstalled(package or module.split('.')[0], purpose, extra) from None
