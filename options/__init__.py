"""The shipped BasicSR option files of the PFDN recipe, installed with the package as ``pfdn_arch.options``
(``pfdn_arch/layout/locations.py`` finds them the same way in editable and normal installs)."""
