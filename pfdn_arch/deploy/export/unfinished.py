"""What an export that was stopped (Ctrl-C, a kill) had written, so that running the same command again continues.

``basicsr export`` refuses to replace files that are already there: they may be the user's. While it runs, a record
beside its outputs, ``.<name>.pfdn-export.json``, names the files this export claimed (those that did not exist
when it began), the weights it exports (SHA-256) and its settings, and each finished step's files with their
size and SHA-256. A rerun with the same weights and settings keeps the finished steps whose files are still what
was written, redoes the rest, and may replace the claimed files; anything else already there is still refused. The
record goes when the export completes. A record that does not parse, or that is for other weights or settings, is
no record.
"""
import json
import os
from typing import Dict, Iterable, List, Optional

from ...files.atomic import hidden_name, write_text
from ...files.sources import digest, fingerprint

SUFFIX = '.pfdn-export.json'


class UnfinishedExport:
    """The record of one export into ``folder`` under the stem ``name``.

    Args:
        folder (str): the output folder.
        name (str): the export's file name stem.
        weights (str): the checkpoint exported (its content is what counts, not its name).
        settings (dict): the options that change what is written (formats, opset, precisions, ...).
    """

    def __init__(self, folder: str, name: str, weights: str, settings: dict):
        self.path = os.path.join(folder, hidden_name(folder, name, SUFFIX))
        self.key = {'weights': digest(weights), 'settings': settings}
        self.claimed: List[str] = []
        self.done: Dict[str, Dict[str, Optional[dict]]] = {}
        earlier = self._read()
        if earlier is not None and earlier.get('key') == self.key:
            self.claimed = [p for p in earlier.get('claimed', []) if isinstance(p, str)]
            self.done = {k: v for k, v in (earlier.get('done') or {}).items() if isinstance(v, dict)}

    def _read(self) -> Optional[dict]:
        try:
            with open(self.path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def theirs(self, paths: Iterable[str]) -> List[str]:
        """The paths that exist and that no unfinished run of this same export wrote: the user's."""
        return [p for p in paths if os.path.lexists(p) and os.path.basename(p) not in self.claimed]

    def begin(self, paths: Iterable[str]) -> None:
        """Claim the export's outputs (all absent now, or claimed before) before anything is written."""
        self.claimed = sorted(set(self.claimed) | {os.path.basename(p) for p in paths})
        self._save()

    def finished(self, step: str, paths: Iterable[str]) -> bool:
        """Whether ``step`` was finished by an earlier run and its files are still exactly what it wrote."""
        files = self.done.get(step)
        if not files or set(files) != {os.path.basename(p) for p in paths}:
            return False
        return all(fingerprint(p) == files[os.path.basename(p)] for p in paths)

    def record(self, step: str, paths: Iterable[str]) -> None:
        """``step`` has written ``paths``."""
        self.done[step] = {os.path.basename(p): fingerprint(p) for p in paths}
        self._save()

    def complete(self) -> None:
        """The whole export is written: the record goes."""
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass

    def _save(self) -> None:
        write_text(self.path, json.dumps({'key': self.key, 'claimed': self.claimed, 'done': self.done}, indent=0,
                                         sort_keys=True))
