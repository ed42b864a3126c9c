"""What derived data was made from: a record of content fingerprints, so a rerun knows what is stale.

``basicsr prepare`` keeps what an earlier run made (so an interrupted run continues), which is only right while the
sources are the same: an HR image edited in place (same name, same size) must remake its LR, and an LMDB of other
images must not be reported ready. Every output folder (LR images, sub-images, benchmark copies) and every LMDB
this package makes has a record beside it, ``.<folder name>.pfdn-sources.json``: for each output, the SHA-256 of
the source file it was made from, the settings it was made with, and the output's own size and SHA-256 as made. An
output whose record does not match its source, or itself, as they are now is stale; one whose source is gone is
removed.
"""
import hashlib
import json
import os
from typing import Any, Callable, Optional

from .atomic import write_text

RECORD = '.pfdn-sources.json'  # after '.<folder name>'
_CHUNK = 1 << 20


def digest(path: str) -> str:
    """SHA-256 of a file's content (hex)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(_CHUNK), b''):
            h.update(block)
    return h.hexdigest()


class Sources:
    """The record of one output folder or LMDB: ``{output name: {'sha256': source digest, 'made_with': settings,
    'output': {'size', 'sha256'} of the output as made}}``. Both ends are checked: an output counts as made only while
    its source is the same and the output itself is still what was made (an LR image edited by hand is made again).
    A record that is not one this package wrote (damaged, or ``outputs`` not a mapping) counts as no record, with a
    note.

    Args:
        folder (str): the output folder (or LMDB folder) the record lives in.
        note (callable): where the note on a malformed record goes (None: nowhere).
    """

    def __init__(self, folder: str, note: Optional[Callable[[str], None]] = None):
        # beside the folder, hidden, not in it: a folder of images stays a folder of images, an LMDB an LMDB
        folder = os.path.normpath(folder)
        self.path = os.path.join(os.path.dirname(folder), f'.{os.path.basename(folder)}{RECORD}')
        self.entries, self.made = {}, None
        self.malformed = False
        if os.path.isfile(self.path):
            try:
                with open(self.path) as f:
                    data = json.load(f)
                entries = data.get('outputs') if isinstance(data, dict) else None
                if not isinstance(entries, dict):
                    raise ValueError('no mapping of outputs')
                self.entries = {k: v for k, v in entries.items() if _well_formed(v)}
                self.made = data.get('made') if isinstance(data.get('made'), dict) else None
                self.malformed = len(self.entries) != len(entries)
            except (OSError, ValueError):
                self.entries, self.malformed = {}, True  # every output counts as unrecorded, and is made again
            if self.malformed and note:
                note(f'note: {self.path} is not a record this package wrote, or part of it is damaged; what it does '
                     'not describe is made again')

    @property
    def exists(self) -> bool:
        return os.path.isfile(self.path) and not self.malformed

    def matches(self, name: str, source_digest: str, made_with: Any, output: Optional[str] = None) -> bool:
        """Whether ``name`` was made from a source of ``source_digest`` with ``made_with`` and, given the path of
        the ``output``, whether that file is still the one made (its size and SHA-256)."""
        entry = self.entries.get(name)
        if not (entry and entry.get('sha256') == source_digest and entry.get('made_with') == made_with):
            return False
        return output is None or entry.get('output') == fingerprint(output)

    def add(self, name: str, source_digest: str, made_with: Any, output: Optional[str] = None) -> None:
        self.entries[name] = {'sha256': source_digest, 'made_with': made_with}
        if output is not None:
            self.entries[name]['output'] = fingerprint(output)

    def made_matches(self, fingerprint_now: Any) -> bool:
        """Whether the whole output (an LMDB) is still what was made: ``fingerprint_now`` against the record's."""
        return self.made is not None and self.made == fingerprint_now

    def forget(self, name: str) -> None:
        self.entries.pop(name, None)

    def save(self) -> None:
        os.makedirs(os.path.dirname(self.path) or '.', exist_ok=True)
        data = {'outputs': self.entries, **({'made': self.made} if self.made is not None else {})}
        write_text(self.path, json.dumps(data, indent=0, sort_keys=True))


def fingerprint(path: str) -> Optional[dict]:
    """What an output was when made: its size and SHA-256 (None when it is not a file)."""
    if not os.path.isfile(path):
        return None
    return {'size': os.path.getsize(path), 'sha256': digest(path)}


def _well_formed(entry):
    return isinstance(entry, dict) and isinstance(entry.get('sha256'), str)
