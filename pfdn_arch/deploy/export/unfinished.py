"""What an export wrote, so that running the same command again continues it and never takes a file of the user's.

``basicsr export`` refuses to replace files that are already there: they may be the user's. Beside its outputs it
keeps a record, ``.<name>.pfdn-export.json``: the weights it exports (SHA-256) and its settings (its key), and for
each format it wrote, its files' sizes and SHA-256. A format's files are written into a staging folder beside the
outputs (``.<name>.pfdn-export-staging``), their digests recorded, and only then do they take their names, so every
file of ours at an output's name is in the record, whatever instant a kill lands at. A file at an output's name may be
replaced only where it is byte for byte what this same export (its key) wrote; anything else is refused (``--force``
replaces it). A rerun of the same export keeps the formats whose files are still what it wrote, and writes the rest;
once every format is written the record stays, so a rerun after an interruption at the very end finds the export
done. A record that does not parse, is not shaped as this module writes it, or is for other weights or settings, is
no record.
"""
import json
import os
import shutil
from typing import Any, Dict, Iterable, List, Optional

from ...files.atomic import hidden_name, plain_permissions, read_json, write_text
from ...files.sources import digest, fingerprint

SUFFIX = '.pfdn-export.json'
STAGING = '.pfdn-export-staging'


class UnfinishedExport:
    """The record of one export into ``folder`` under the stem ``name``.

    Args:
        folder (str): the output folder.
        name (str): the export's file name stem.
        weights (str): the checkpoint exported (its content is what counts, not its name).
        settings (dict): the options that change what is written (formats, opset, precisions, ...).
    """

    def __init__(self, folder: str, name: str, weights: str, settings: dict):
        self.folder = folder
        self.path = os.path.join(folder, hidden_name(folder, name, SUFFIX))
        self.staging = os.path.join(folder, hidden_name(folder, name, STAGING))
        self.key = {'weights': digest(weights), 'settings': settings}
        # {step: {file name: {'size', 'sha256'}}}: what each step wrote (written: every file has its name)
        self.written: Dict[str, Dict[str, dict]] = {}
        earlier = _read(self.path)
        if earlier is not None and earlier['key'] == self.key:
            self.written = earlier['written']

    def ours(self, path: str) -> bool:
        """Whether the file at ``path`` is byte for byte one this export wrote there."""
        name = os.path.basename(path)
        made = [files[name] for files in self.written.values() if name in files]
        return bool(made) and fingerprint(path) in made

    def theirs(self, paths: Iterable[str]) -> List[str]:
        """The paths where a file is that this export did not write: the user's (or another export's)."""
        return [p for p in paths if os.path.lexists(p) and not (os.path.isfile(p) and self.ours(p))]

    def staged(self, paths: Iterable[str]) -> List[str]:
        """Where a step writes ``paths`` first: the same names in the staging folder (emptied of what a stopped run
        left)."""
        os.makedirs(self.staging, exist_ok=True)
        out = [os.path.join(self.staging, os.path.basename(p)) for p in paths]
        for leftover in out:
            if os.path.lexists(leftover):
                os.remove(leftover)
        return out

    def finished(self, step: str, paths: Iterable[str]) -> bool:
        """Whether ``step`` was written by an earlier run of this export and its files are still exactly that."""
        files = self.written.get(step) or {}
        names = {os.path.basename(p) for p in paths}
        return bool(files) and set(files) == names and all(fingerprint(p) == files[os.path.basename(p)]
                                                           for p in paths)

    def publish(self, step: str, staged: List[str], paths: List[str]) -> None:
        """``step``'s files, written and checked in the staging folder, recorded (their digests), then given their
        names (each rename atomic)."""
        self.written[step] = {os.path.basename(p): _made(s) for s, p in zip(staged, paths)}
        self._save()
        for source, target in zip(staged, paths):
            plain_permissions(source)
            os.replace(source, target)

    def complete(self) -> None:
        """Every step is written: the staging folder goes, the record stays (a rerun finds the export done)."""
        shutil.rmtree(self.staging, ignore_errors=True)

    def _save(self) -> None:
        write_text(self.path, json.dumps({'key': self.key, 'written': self.written}, indent=0, sort_keys=True))


def _made(path: str) -> dict:
    """A written file's size and SHA-256."""
    made = fingerprint(path)
    if made is None:
        raise FileNotFoundError(path)  # a format's writer that did not write one of its files: a bug, said as such
    return made


def _read(path: str) -> Optional[Dict[str, Any]]:
    """The record at ``path`` if it is one as ``_save`` writes it; None otherwise (missing, damaged, other shape)."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get('key'), dict):
        return None
    written = data.get('written')
    if not isinstance(written, dict) or not all(
            isinstance(files, dict) and all(isinstance(name, str) and _fingerprint_shaped(made)
                                            for name, made in files.items())
            for files in written.values()):
        return None
    return data


def _fingerprint_shaped(made: Any) -> bool:
    return isinstance(made, dict) and set(made) == {'size', 'sha256'} and isinstance(made['size'], int) and \
        isinstance(made['sha256'], str)
