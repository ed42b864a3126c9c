"""Paired-image LMDBs, written resumably, in two value formats.

- ``png`` (BasicSR's own): PNG bytes, what ``PairedImageDataset`` reads with ``io_backend: {type: lmdb}``.
  ``meta_info.txt`` lines are ``<key>.png (h,w,c) <compress_level>``.
- ``decoded`` (this package's training form): the pixels themselves, uint8, HWC, RGB, C-order, decoded once when
  the LMDB is made. ``meta_info.txt`` lines are ``<key>.raw (h,w,c) raw``. LMDB memory-maps the file and
  ``get(..., buffers=True)`` returns a view into the map, so a random crop touches only the pages of the crop:
  no decoding and no copy of the whole image per sample. All DataLoader workers and DDP processes on a machine
  share one copy of the data in the OS page cache. Disk: h*w*3 bytes per image (the x4 LR images 1/16 of that).

Writing is resumable: the LMDB is built under ``<path>.partial``; every committed transaction is recorded in
``meta_info.partial`` after the commit, so a rerun after an interruption skips exactly the images already stored
and continues; the folder is renamed to ``<path>`` only when complete. An existing LMDB is never written to.
"""
import os
import re
import shutil
from typing import Any, Callable, List, Optional, Sequence, Tuple

import cv2
import lmdb
import numpy as np
from tqdm import tqdm

from .. import stopping
from ..errors import DataError, OptionsError, OutputExists, PFDNError
from ..files.atomic import write_text
from ..files.images import image_size, list_images, read_image
from ..files.paths import disk_full, free_bytes, output_dir
from ..files.sources import Sources, digest

FORMATS = ('decoded', 'png')
RAW = 'raw'
META = 'meta_info.txt'
_META_LINE = re.compile(r'^(?P<key>[^.\s]+)\.(?P<ext>\w+) \((?P<h>\d+),(?P<w>\d+),(?P<c>\d+)\) (?P<tag>\w+)$')
COMMIT_BYTES = 256 << 20  # commit about every 256 MB: bounds the write transaction's memory


def gt_lmdb_name(name: str, scale: int) -> str:
    """The whole-image GT LMDB of a scale: its images are cropped to a multiple of the scale (so that GT = LR x
    scale exactly), so x2 and x3 have their own beside x4's ``DF2K_HR.lmdb``: ``DF2K_HR_mod2.lmdb``."""
    return name if scale == 4 or not name.endswith('.lmdb') else f'{name[:-len(".lmdb")]}_mod{scale}.lmdb'


def parse_meta(path: str) -> List[Tuple[str, Tuple[int, int, int], str]]:
    """[(key, (h, w, c), tag)] from a meta_info file; a torn last line (interrupted write) is left out."""
    out = []
    with open(path) as f:
        for line in f:
            m = _META_LINE.match(line.rstrip('\n')) if line.endswith('\n') else None
            if m:
                out.append((m['key'], (int(m['h']), int(m['w']), int(m['c'])), m['tag']))
    return out


def lmdb_format(path: str) -> Optional[str]:
    """'decoded', 'png', or None when ``path`` is not an LMDB with a meta_info.txt."""
    meta = os.path.join(path, META)
    if not os.path.isfile(meta):
        return None
    with open(meta) as f:
        first = f.readline()
    return 'decoded' if first.split(' ')[0].endswith('.' + RAW) else 'png'


def _meta_line(key, shape, fmt, compress_level):
    h, w, c = shape
    return f'{key}.raw ({h},{w},{c}) {RAW}\n' if fmt == 'decoded' else f'{key}.png ({h},{w},{c}) {compress_level}\n'


def _image_bytes(path):
    """Decoded size of an image from its header (no decoding): h * w * 3."""
    h, w = image_size(path)
    return h * w * 3


def write_lmdb(items: Sequence[Tuple[str, str]], lmdb_path: str, fmt: str = 'decoded',
               read: Optional[Callable[[str], np.ndarray]] = None, compress_level: int = 1, desc: str = 'LMDB',
               sources: Optional[dict] = None, replace: bool = False) -> int:
    """Write ``items`` (a list of (key, image path)) into a new LMDB, resuming an interrupted run.

    Args:
        fmt (str): 'decoded' (uint8 RGB pixels) or 'png' (BasicSR's PNG bytes).
        read (callable): path -> uint8 BGR image (default: ``images.read_image``, colour); lets callers mod-crop.
        sources (dict): key -> (source digest, settings), recorded in the LMDB (``files/sources.py``).
        replace (bool): an existing LMDB at ``lmdb_path`` (a stale one) is replaced once the new one is complete;
            until then it stays as it was. Default: an existing LMDB is an error.
    Returns:
        int: number of images in the LMDB.
    """


    if fmt not in FORMATS:
        raise OptionsError(f"must be one of {', '.join(FORMATS)}, got '{fmt}'", 'format')
    if not lmdb_path.endswith('.lmdb'):
        raise OptionsError('an LMDB path must end in .lmdb (BasicSR requires it)', lmdb_path)
    if os.path.exists(lmdb_path) and not replace:
        raise OutputExists(lmdb_path, 'exists; an LMDB is never overwritten: remove it or choose another path')
    old = lmdb_path + '.stale'
    if os.path.exists(old) and os.path.exists(lmdb_path):
        shutil.rmtree(old)  # a replaced LMDB a kill left behind, after its successor was in place
    keys = [k for k, _ in items]
    bad = [k for k in keys if '.' in k or ' ' in k]
    if bad:
        raise DataError(f'LMDB keys cannot contain dots or spaces (BasicSR splits on them): {bad[:3]}; rename those '
                        'files')
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})[:3]
        raise DataError(f'two input images share the name {dup}; names must be unique across the input folders')
    read = read or read_image
    partial = lmdb_path + '.partial'
    progress = os.path.join(partial, 'meta_info.partial')
    done = {}
    if os.path.isfile(progress):  # an interrupted run: keep what was committed, rewrite the record without a torn line
        done = {key: _meta_line(key, shape, fmt, compress_level) for key, shape, _ in parse_meta(progress)}
        _rewrite(progress, list(done.values()))
    todo = [(k, p) for k, p in items if k not in done]
    if fmt == 'decoded':
        estimate = sum(_image_bytes(p) for _, p in items)
        map_size = int(estimate * 1.1) + (256 << 20)  # values are page-aligned: a few % over the pixel bytes
    else:
        estimate = sum(os.path.getsize(p) for _, p in items)  # PNGs at about their sources' size
        map_size = max(estimate * 10, 1 << 30)
    # room for what is still to write, before any of it (an interrupted run's part is there already)
    output_dir(os.path.dirname(os.path.abspath(lmdb_path)), need_bytes=max(0, estimate - _size_of(partial)))
    os.makedirs(partial, exist_ok=True)
    try:
        env = lmdb.open(partial, map_size=map_size, subdir=True, meminit=False, map_async=False)
        try:
            with open(progress, 'a') as record:
                bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=desc, unit='img')
                batch, batch_bytes = [], 0
                for i, (key, path) in enumerate(todo):
                    stopping.check()  # every image: a Ctrl-C whose first raise was lost still stops the run
                    img = read(path)
                    if fmt == 'decoded':
                        value = np.ascontiguousarray(img[:, :, ::-1]).tobytes()  # RGB: no channel swap per sample
                    else:
                        ok, buf = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
                        if not ok:
                            raise PFDNError('cannot encode as PNG', path)
                        value = buf.tobytes()
                    batch.append((key, value, img.shape))
                    batch_bytes += len(value)
                    if batch_bytes >= COMMIT_BYTES or i == len(todo) - 1:
                        with env.begin(write=True) as txn:
                            for k, v, _ in batch:
                                txn.put(k.encode('ascii'), v)
                        # recorded only after the commit: what the record names is in the LMDB
                        record.write(''.join(_meta_line(k, s, fmt, compress_level) for k, _, s in batch))
                        record.flush()
                        os.fsync(record.fileno())
                        done.update((k, _meta_line(k, s, fmt, compress_level)) for k, _, s in batch)
                        bar.update(len(batch))
                        batch, batch_bytes = [], 0
                bar.close()
            env.sync(True)
        finally:
            env.close()
    except (lmdb.Error, OSError) as err:
        if not _out_of_room(err, partial):
            raise
        shutil.rmtree(partial, ignore_errors=True)
        free = free_bytes(os.path.dirname(os.path.abspath(lmdb_path)))
        raise DataError(f'the disk filled up while it was written ({(free or 0) / 2**20:,.0f} MB free); the unfinished '
                        f'LMDB was removed and nothing else changed: make room (it needs about {estimate / 2**30:.1f} '
                        'GB) and rerun the same command', lmdb_path) from None
    _rewrite(os.path.join(partial, META), [done[k] for k in keys])
    os.remove(progress)
    if os.path.exists(lmdb_path):  # replace: the old one out of the way, the new one in, the old one removed
        os.rename(lmdb_path, old)
    if sources:  # the record (beside the LMDB) before the LMDB is in place: no LMDB of ours goes unrecorded
        made = Sources(lmdb_path)
        made.entries = {key: {'sha256': d, 'made_with': made_with} for key, (d, made_with) in sources.items()}
        made.made = {'data.mdb': os.path.getsize(os.path.join(partial, 'data.mdb')),
                       'meta_info.txt': digest(os.path.join(partial, META))}
        made.save()
    os.rename(partial, lmdb_path)
    if os.path.exists(old):
        shutil.rmtree(old)
    return len(keys)


def _size_of(folder: str) -> int:
    """Bytes the files in ``folder`` hold (0 where it is not there)."""
    if not os.path.isdir(folder):
        return 0
    return sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder)
               if os.path.isfile(os.path.join(folder, n)))


def _out_of_room(err: BaseException, folder: str) -> bool:
    """Whether writing the LMDB in ``folder`` failed because its disk filled up: the system said so, or LMDB said
    its write failed (it reports a full disk as an input/output error) with less than a commit's room left."""
    if isinstance(err, OSError):
        return disk_full(err)
    free = free_bytes(folder)
    return free is not None and free < 2 * COMMIT_BYTES


def _rewrite(path, lines):
    write_text(path, ''.join(lines))


_READERS: dict = {}


def _reader(path):
    """One read-only environment per LMDB and process (LMDB refuses a second one in the same process, and an
    environment must not cross a fork)."""
    key = (os.getpid(), os.path.realpath(path))
    if key not in _READERS:
        _READERS[key] = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False)
    return _READERS[key]


def lq_sizes(dataset_opt: dict) -> List[Tuple[int, int]]:
    """The (h, w) of every LQ image a dataset's options name (a folder's headers, or an LMDB's meta_info)."""
    root = dataset_opt.get('dataroot_lq')
    if not root or not os.path.exists(root):
        return []
    if lmdb_format(root) is not None:
        return [(shape[0], shape[1]) for _, shape, _ in parse_meta(os.path.join(root, META))]
    sizes = []
    for path in list_images(root):
        try:
            h, w = image_size(path)
            sizes.append((h, w))
        except PFDNError:
            pass  # the dataset's own reading reports it
    return sizes


def verify_lmdb(path: str) -> int:
    """Check that an LMDB is whole before anything reads it: a ``data.mdb`` shorter than the pages its own header
    uses (a copy cut short) would kill the reader with SIGBUS, a zero-length one is not an LMDB, and a key listed in
    ``meta_info.txt`` but not stored would fail mid-training. Opens it read-only and reads no values (each key's
    lookup touches only the tree's pages, all inside the file once its length checks out). Returns the number of
    pairs it lists."""
    data = os.path.join(path, 'data.mdb')
    meta = os.path.join(path, META)
    if not os.path.isfile(data) or not os.path.isfile(meta):
        raise DataError(f"is not a whole LMDB (no {'data.mdb' if not os.path.isfile(data) else META})", path)
    size = os.path.getsize(data)
    if size == 0:
        raise DataError('its data.mdb is empty (0 bytes): make the LMDB again', path)
    # LMDB refuses a second environment of one file in a process: the reader's, when this process has one
    cached = _READERS.get((os.getpid(), os.path.realpath(path)))
    try:
        env = cached or lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False)
    except lmdb.Error as err:
        raise DataError(f'is not a readable LMDB ({str(err).splitlines()[0]}): make it again', path) from None
    try:
        used = (env.info()['last_pgno'] + 1) * env.stat()['psize']
        if size < used:
            raise DataError(f'its data.mdb is cut short ({size:,} bytes of the {used:,} its pages take): copy or make '
                            'it again', path)
        keys = [key for key, _, _ in parse_meta(meta)]
        with env.begin(buffers=True) as txn:
            absent = [k for k in keys if txn.get(k.encode('ascii')) is None]
    finally:
        if cached is None:
            env.close()
    if absent:
        raise DataError(f'{len(absent)} of the {len(keys)} keys its meta_info.txt lists are not stored (e.g. '
                        f'{absent[0]}): make it again', path)
    return len(keys)


class DecodedLMDB:
    """Read side of a decoded LMDB: ``array(txn, key)`` is a read-only HWC uint8 RGB view into the memory map,
    valid while the transaction is open. Opened lazily, so it pickles for DataLoader workers (each opens its own
    read-only environment; no locks, no readahead: random crops read only their pages).

    Args:
        path (str): the LMDB folder.
    """
    def __init__(self, path: str):
        fmt = lmdb_format(path)
        if fmt is None:
            raise DataError('not an LMDB made by basicsr prepare (no meta_info.txt)', path)
        if fmt != 'decoded':
            raise DataError("holds PNG images (BasicSR's format): use type: PairedImageDataset for it, or make a "
                            'decoded LMDB with basicsr prepare lmdb (its default format)', path)
        self.path = path
        self.shapes = {key: shape for key, shape, _ in parse_meta(os.path.join(path, META))}
        self._env: Any = None

    def begin(self) -> Any:
        if self._env is None:
            self._env = _reader(self.path)
        return self._env.begin(buffers=True)

    def array(self, txn: Any, key: str) -> np.ndarray:
        buf = txn.get(key.encode('ascii'))
        if buf is None:
            raise KeyError(f'{key} is listed in {self.path}/meta_info.txt but not stored')
        return np.frombuffer(buf, np.uint8).reshape(self.shapes[key])

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_env'] = None  # an open environment does not cross processes
        return state
