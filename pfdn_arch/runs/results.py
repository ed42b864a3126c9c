"""What a BasicSR run measured, read from the log BasicSR itself wrote, for any model: the validation history of a
training run (``experiments/<name>/validation.json``, what the schedule's PSNR plot is drawn from) and the metrics
table of a test run (``results/<name>/results.md``).

BasicSR logs each validation as ``Validation <dataset>`` followed by one ``\\t # <metric>: <value>`` line per metric
(``BaseModel._log_validation_metric_values``, four decimals), whichever model ran it; nothing of BasicSR is replaced
to hear it. A training log does not say the iteration of a validation, but its loop does: after ``Start training
from epoch: E, iter: I`` the validations come every ``val_freq`` iterations (one block per validation set), and
after ``End of training`` once more at the last iteration. Models whose metrics are not single numbers (BasicSR's
video models log per clip) leave no such lines, and the command says there is no table instead of pointing at one.
"""
import glob
import json
import os
import re
from typing import Dict, List, Optional, Set, Tuple

from ..files.atomic import write_text
from ..layout.experiment import Experiment, read_history

TABLE = 'results.md'
_STAMPED = re.compile(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \w+: (.*)$')
_METRIC = re.compile(r'^\t # (\S+): (\S+?)(?:\t|$)')
_START = re.compile(r'Start training from epoch: \d+, iter: (\d+)')
_END = 'End of training.'

Block = Tuple[str, Dict[str, float], str, int]  # dataset, metrics, 'periodic' | 'final' | 'test', start iteration


def log_files(folder: str, is_train: bool, name: str) -> Set[str]:
    """The logs BasicSR writes for run ``name`` in ``folder`` (``train_<name>_<time>.log`` / ``test_...``)."""
    prefix = 'train' if is_train else 'test'
    return set(glob.glob(os.path.join(glob.escape(folder), f'{prefix}_{glob.escape(name)}_*.log')))


def validations(log: str) -> List[Block]:
    """Each ``Validation <dataset>`` block of a BasicSR log with its metrics, in order."""
    blocks: List[Block] = []
    phase, start = 'test', 0
    current: Optional[Tuple[str, Dict[str, float]]] = None
    with open(log, errors='replace') as f:
        for line in f:
            line = line.rstrip('\n')
            stamped = _STAMPED.match(line)
            if stamped:
                message = stamped[1]
                current = None
                if (m := _START.search(message)) is not None:
                    phase, start = 'periodic', int(m[1])
                elif message.startswith(_END):
                    phase = 'final'
                elif message.startswith('Validation '):
                    current = (message[len('Validation '):].strip(), {})
                continue
            metric = _METRIC.match(line)
            if current is not None and metric is not None:
                try:
                    current[1][metric[1]] = float(metric[2])
                except ValueError:
                    continue
                if len(current[1]) == 1:
                    blocks.append((current[0], current[1], phase, start))
    return blocks


def history_entries(blocks: List[Block], val_freq: int, total_iter: int) -> List[dict]:
    """Validation history entries (``iter``, ``dataset``, metrics) of one training log's blocks."""
    entries: List[dict] = []
    seen: Set[str] = set()
    index, last = -1, None
    for dataset, metrics, phase, start in blocks:
        if (phase, start) != last or dataset in seen:  # a new validation: every set is validated once per event
            index, seen, last = index + 1 if (phase, start) == last else 0, set(), (phase, start)
        seen.add(dataset)
        if phase == 'final':
            it = total_iter
        elif phase == 'periodic':
            it = (start // val_freq + 1 + index) * val_freq
        else:
            continue
        entries.append(dict({'iter': min(it, total_iter), 'dataset': dataset}, **metrics))
    return entries


def record_run(opt: dict, is_train: bool, folder: str, before: Set[str]) -> List[str]:
    """After one run of BasicSR's pipeline (``opt``: the options it ran, ``folder``: its experiment or results
    folder, ``before``: the logs there before it started): what its new log says, written down. Returns the files
    written."""
    new = sorted(log_files(folder, is_train, opt['name']) - before)
    if not new or int(os.environ.get('RANK', '0')) != 0:
        return []
    blocks = [b for log in new for b in validations(log)]
    if is_train:
        val_freq = max(1, int(float((opt.get('val') or {}).get('val_freq') or 1)))
        entries = history_entries(blocks, val_freq, int(opt['train']['total_iter']))
        return [_add_history(folder, entries)] if entries else []
    rows = [(dataset, metrics) for dataset, metrics, _, _ in blocks]
    return [_write_table(opt, folder, rows)] if rows else []


def _add_history(folder: str, entries: List[dict]) -> str:
    """``entries`` added to the experiment's history; an entry of the same iteration and set is replaced (a resumed
    run validates again what a stopped one had)."""
    path = Experiment.at(folder).history_file
    fresh = {(e['iter'], e['dataset']) for e in entries}
    history = [e for e in read_history(path) if (e.get('iter'), e.get('dataset')) not in fresh] + entries
    history.sort(key=lambda e: (e.get('iter', 0), str(e.get('dataset'))))
    write_text(path, json.dumps(history, indent=1))
    return path


def _write_table(opt: dict, folder: str, rows: List[Tuple[str, Dict[str, float]]]) -> str:
    """The run's metrics, one row per test set, as ``results.md`` (written whole, atomically)."""
    names: List[str] = []
    for _, metrics in rows:
        names += [m for m in metrics if m not in names]
    text = (f"# {opt['name']} (x{opt.get('scale', '?')})\n\n| dataset | " + ' | '.join(m.upper() for m in names)
            + ' |\n|' + ' --- |' * (len(names) + 1) + '\n')
    for dataset, metrics in rows:
        text += f'| {dataset} | ' + ' | '.join(_cell(metrics.get(m)) for m in names) + ' |\n'
    path = os.path.join(folder, TABLE)
    write_text(path, text)
    return path


def _cell(value: Optional[float]) -> str:
    return '' if value is None else f'{value:.4f}'
