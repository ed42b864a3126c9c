"""One run's options, checked before anything is written: ``options.py`` (read once, BasicSR's defaults, the checks
in order, the yml handed to BasicSR), ``overrides.py`` (what a ``--force_yml`` value means), ``preflight.py`` and
``datasets.py`` (one function per mistake), ``scales.py`` (x2/x3 options from x4). Needs basicsr."""
