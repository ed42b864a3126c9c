"""Command line: ``basicsr`` / ``pfdn`` and their sub-commands."""
