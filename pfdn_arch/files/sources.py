"""What derived data was made from: a record of content fingerprints, so a rerun knows what is stale.

``basicsr prepare`` keeps what an earlier run made (so an interrupted run continues), which is only right while the
sources are the same: an HR image edited in place (same name, same size) must remake its LR, and an LMDB of other
images must not be reported ready. Every output folder (LR images, sub-images, benchmark copies) and every LMDB
this package makes has a record beside it, ``.<folder name>.pfdn-sources.json``: for each output, the SHA-256 of the source file it was made from
and the settings it was made with. An output whose record does not match the source as it is now is stale.
"""
import hashlib
import json
import os

from .atomic import write_text

RECORD = '.pfdn-sources.json'  # after '.<folder name>'
_CHUNK = 1 << 20


def digest(path):
    """SHA-256 of a file's content (hex)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(_CHUNK), b''):
            h.update(block)
    return h.hexdigest()


class Sources:
    """The record of one output folder or LMDB: ``{output name: {'sha256': source digest, 'made_with': settings}}``.

    Args:
        folder (str): the output folder (or LMDB folder) the record lives in.
    """

    def __init__(self, folder):
        # beside the folder, hidden, not in it: a folder of images stays a folder of images, an LMDB an LMDB
        folder = os.path.normpath(folder)
        self.path = os.path.join(os.path.dirname(folder), f'.{os.path.basename(folder)}{RECORD}')
        self.entries = {}
        if os.path.isfile(self.path):
            try:
                with open(self.path) as f:
                    data = json.load(f)
                self.entries = data.get('outputs', {}) if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self.entries = {}  # a damaged record: every output counts as unrecorded, and is made again

    @property
    def exists(self):
        return os.path.isfile(self.path)

    def matches(self, name, source_digest, made_with):
        """Whether ``name`` was made from a source of ``source_digest`` with ``made_with``."""
        entry = self.entries.get(name)
        return isinstance(entry, dict) and entry.get('sha256') == source_digest and entry.get('made_with') == made_with

    def add(self, name, source_digest, made_with):
        self.entries[name] = {'sha256': source_digest, 'made_with': made_with}

    def save(self):
        os.makedirs(os.path.dirname(self.path) or '.', exist_ok=True)
        write_text(self.path, json.dumps({'outputs': self.entries}, indent=0, sort_keys=True))
