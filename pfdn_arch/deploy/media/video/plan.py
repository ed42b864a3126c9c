"""The parts folder's record (``plan.json``) of a long video job: what the parts were made from and which are
finished, so that a rerun continues after the last finished one."""
import json
import os
import shutil

from ....files.atomic import read_json, write_text


class Plan:
    """The parts folder's record: the input's identity and the settings the parts were made with, and the
    finished parts (index, file, frames). Written atomically after each part."""

    def __init__(self, folder: str, key: dict):
        self.folder, self.key, self.path = folder, key, os.path.join(folder, 'plan.json')
        self.parts, self.discarded = [], False
        if os.path.isfile(self.path):
            saved = read_json(self.path) or {}
            if saved.get('key') == key and all(os.path.isfile(os.path.join(folder, p['file']))
                                               for p in saved.get('parts', [])):
                self.parts = saved['parts']
            else:
                self.discarded = True
        if self.discarded or not self.parts:
            shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder, exist_ok=True)

    @property
    def next_part(self) -> int:
        return self.parts[-1]['index'] + 1 if self.parts else 0

    @property
    def frames_done(self) -> int:
        return sum(p['frames'] for p in self.parts)

    @property
    def complete(self) -> bool:
        return bool(self.parts) and self.parts[-1].get('last', False)

    def add(self, index: int, name: str, frames: int) -> None:
        self.parts.append({'index': index, 'file': name, 'frames': frames})
        self._save()

    def mark_complete(self) -> None:
        """Every frame is in the parts (the decoder reached the input's end)."""
        if self.parts:
            self.parts[-1]['last'] = True
            self._save()

    def _save(self):
        write_text(self.path, json.dumps({'key': self.key, 'parts': self.parts}, indent=1))
