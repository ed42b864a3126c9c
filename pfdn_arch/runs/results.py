"""What a run measured, as PFDNModel recorded it (``layout.experiment.add_validation``): a training run's validation
history is its ``experiments/<name>/validation.json``, written as it validates (what the schedule reports and plots);
a test run's figures become ``results/<name>/results.md``, one row per test set. BasicSR's own models record nothing
here: their figures are in BasicSR's log, as BasicSR writes it.
"""
import os
from typing import List, Optional

from ..files.atomic import write_text
from ..layout.experiment import HISTORY, read_history

TABLE = 'results.md'


def write_table(opt: dict, folder: str) -> Optional[str]:
    """``results.md`` of a test run in ``folder`` from what its model recorded (written whole, atomically); None
    where it recorded nothing."""
    rows = [e for e in read_history(os.path.join(folder, HISTORY)) if e.get('iter') is None]
    if not rows or int(os.environ.get('RANK', '0')) != 0:
        return None
    names: List[str] = []
    for row in rows:
        names += [m for m in row if m not in ('iter', 'dataset') and m not in names]
    text = (f"# {opt['name']} (x{opt.get('scale', '?')})\n\n| dataset | " + ' | '.join(m.upper() for m in names)
            + ' |\n|' + ' --- |' * (len(names) + 1) + '\n')
    for row in rows:
        text += f"| {row['dataset']} | " + ' | '.join(_cell(row.get(m)) for m in names) + ' |\n'
    path = os.path.join(folder, TABLE)
    write_text(path, text)
    return path


def _cell(value: Optional[float]) -> str:
    return '' if value is None else f'{value:.4f}'
