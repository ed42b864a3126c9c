"""``python -m pfdn_arch.cli``: the console command (``pfdn_arch.console``)."""
from ..console import console

console()
