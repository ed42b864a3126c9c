"""What made a file written at a name the user chose (``basicsr infer``'s results, the model ``basicsr schedule
--out`` writes), so that a rerun keeps such a file only where it is the same work's, and never takes one it did not
write.

Beside each such file (a picture, a film, a model) a record, ``.<name>.pfdn-made.json``: the SHA-256 of the result as
written and the work that made it (``work``: the input's SHA-256, the weights' SHA-256, the scale, what ran and in
which precision, the tiles; for a film its encoding too). It is written before the result takes its name, keeping
the entry of the result it replaces, so whatever instant a kill lands at, a result of ours at that name is in the
record. A rerun keeps a result the record says this same work made (``SAME``); makes again one it says other work
made (``OTHER``: other weights, another scale, precision or tile; the picture on disk is then never reported as the
new model's); and leaves alone one it does not know (``UNKNOWN``: the user's, an older version's, or edited since),
which ``--force`` replaces. The record is data, checked against the file it stands for: never believed alone.
"""
import hashlib
import json
import os
from typing import Any, Dict, List, Optional

from .atomic import hidden_name, read_json, write_text
from .sources import digest

SUFFIX = '.pfdn-made.json'
SAME, OTHER, UNKNOWN = 'same', 'other', 'unknown'


def bytes_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_digest(path: str) -> str:
    """SHA-256 of a model: its file, and for an OpenVINO IR (``.xml``) or an NCNN model (``.param``) its weights
    file (``.bin``) too, where the numbers are."""
    parts = [digest(path)]
    weights = os.path.splitext(path)[0] + '.bin'
    if path.lower().endswith(('.xml', '.param')) and os.path.isfile(weights):
        parts.append(digest(weights))
    return parts[0] if len(parts) == 1 else bytes_digest(' '.join(parts).encode())


class Made:
    """The record beside the result at ``out_path``."""

    def __init__(self, out_path: str):
        self.out_path = out_path
        folder, name = os.path.split(os.path.abspath(out_path))
        self.path = os.path.join(folder, hidden_name(folder, name, SUFFIX))

    def _entries(self) -> List[Dict[str, Any]]:
        data = read_json(self.path)
        entries = data.get('made') if isinstance(data, dict) else None
        if not isinstance(entries, list):
            return []
        return [e for e in entries if isinstance(e, dict) and isinstance(e.get('sha256'), str) and 'work' in e]

    def _current(self) -> Optional[Dict[str, Any]]:
        """The entry of the result now at ``out_path`` (its bytes' digest), or None."""
        entries = self._entries()
        if not entries or not os.path.isfile(self.out_path):
            return None
        now = digest(self.out_path)
        return next((e for e in entries if e['sha256'] == now), None)

    def verdict(self, work: Dict[str, Any]) -> str:
        """``SAME``, ``OTHER`` or ``UNKNOWN`` (see the module's docstring) for the result now at ``out_path``."""
        current = self._current()
        if current is None:
            return UNKNOWN
        return SAME if current['work'] == work else OTHER

    def record(self, sha256: str, work: Dict[str, Any]) -> None:
        """What is about to take the result's name: its digest and work (the entry of the result it replaces kept,
        so that a kill before the rename leaves that one known too)."""
        entries = [{'sha256': sha256, 'work': work}]
        current = self._current()
        if current is not None and current['sha256'] != sha256:
            entries.append(current)
        write_text(self.path, json.dumps({'made': entries}, indent=1, sort_keys=True))

    def drop_if_unwritten(self) -> None:
        """After a write that failed: no record where no file took the name (a full disk leaves no clutter)."""
        if not os.path.lexists(self.out_path):
            try:
                os.remove(self.path)
            except (FileNotFoundError, NotADirectoryError):  # none, or no folder there to hold one
                pass
