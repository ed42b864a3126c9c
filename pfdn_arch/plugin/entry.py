"""What ``python -m basicsr.train`` and ``python -m basicsr.test`` (``torchrun ... -m basicsr.train`` too) run:
``basicsr train`` and ``basicsr test``, with the same checks, the same one-line errors, and ``experiments/`` and
``results/`` under the working directory. The code ``runpy`` executes as ``__main__`` calls ``run_as_main``; the
shim that makes it do so is ``compat._python_m_runs_the_command``. A spawned worker re-runs the main module as
``__mp_main__``: there it only defines BasicSR's names.
"""
from __future__ import annotations

import sys

def run_as_main(command: str, name: str) -> None:
    if name != '__main__':
        return
    from ..cli.main import main
    sys.exit(main([command] + sys.argv[1:]))
