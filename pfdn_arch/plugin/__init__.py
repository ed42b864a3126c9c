"""The BasicSR hook-up: how pfdn plugs into an unmodified BasicSR.

- ``hook``: an import hook that applies the compatibility layer before basicsr's first import and registers pfdn's
  classes right after it, in any process, whatever is imported first;
- ``registry``: the registration itself, and what happens when a name is already taken;
- ``compat``: the shims that make PyPI's basicsr 1.4.2 run on today's Python, torch and torchvision;
- ``entry``: ``python -m basicsr.train`` / ``basicsr.test`` (and ``torchrun -m ...``) run as ``basicsr train`` /
  ``basicsr test``.

The package installs ``pfdn-basicsr-hook.pth`` into site-packages (``setup.py``): Python's ``site`` runs its one
line, ``import pfdn_arch`` (which calls ``install()``), when any interpreter of that environment starts, unless the
environment variable ``PFDN_BASICSR_HOOK`` is ``0``. So BasicSR's own entry points and scripts find PFDN without an
import in user code.
"""
from .hook import install

__all__ = ['install']
