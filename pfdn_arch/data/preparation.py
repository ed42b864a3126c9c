"""Data preparation the PyPI basicsr does not ship: LR by MATLAB-style bicubic, sub-images, paired LMDBs (decoded
for ``PairedCropDataset``, or PNG for BasicSR's ``PairedImageDataset``) and the benchmark layout. Every step shows
progress with ETA, keeps what exists and can be rerun after an interruption.
"""
import contextlib
import multiprocessing
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from tqdm import tqdm

from .. import stopping
from ..archs.pfdn.limits import SCALES
from ..deploy.runtime.tiles import window_starts
from ..errors import DataError, ImageError, OptionsError, OutputExists
from ..files.images import IMAGE_EXTS, image_size, list_images, read_image, write_image
from ..files.locks import owned
from ..files.paths import output_dir
from ..files.sources import Sources, digest
from .bicubic import bicubic_lr, mod_crop
from .lmdb_store import gt_lmdb_name, lmdb_format, parse_meta, verify_lmdb, write_lmdb


def _read(path):
    try:
        return read_image(path, cv2.IMREAD_COLOR)
    except ImageError as err:
        raise ImageError(f'{err.reason}; remove or replace it and rerun', err.path) from None


def images_in(folder: str) -> List[str]:
    """The pictures of an input folder (``list_images``); DataError where it is not a folder or holds none."""
    if not os.path.isdir(folder):
        raise DataError('input folder not found', folder)
    paths = list_images(folder)
    if not paths:
        raise DataError(f"no images ({', '.join(e[1:] for e in IMAGE_EXTS)}) here", folder)
    return paths


LR_MADE_WITH = {'resize': 'matlab-bicubic', 'mod_crop': True}


def make_lr(hr_dirs: Union[str, Sequence[str]], lr_dir: str, scale: int, hr_out_dir: Optional[str] = None,
            desc: str = 'LR', workers: int = 1, note: Optional[Callable[[str], None]] = None) -> int:
    """LR images for every HR image of ``hr_dirs`` (a folder or a list of folders; mod-cropped to the scale first).
    What an earlier run made is kept when it is complete and its record (``files/sources.py``) says it was made
    from the HR image as it is now, at this scale, and is itself as it was made; anything else is made again (an HR
    image changed since, an LR image edited by hand), with a note, and an LR image whose HR image is gone is removed.
    So a rerun finishes an interrupted one and leaves the folder exactly the LR of the HR images there now. One run
    at a time holds the folder (a second one ends with one line naming the first). With ``hr_out_dir`` the HR images
    are copied there as PNG, uncropped (BasicSR crops GT to LR size x scale at test time). ``workers`` > 1 runs that
    many processes (the bicubic resize is the slow part: about a second per 2K image). Returns the number of images
    made."""
    if scale not in SCALES:
        raise OptionsError(f"must be one of {', '.join(map(str, SCALES))}, got {scale}", 'scale')
    note = note or _note
    dirs = [hr_dirs] if isinstance(hr_dirs, str) else list(hr_dirs)
    paths = [p for d in dirs for p in images_in(d)]
    output_dir(lr_dir)  # writable, before anything is read
    os.makedirs(lr_dir, exist_ok=True)
    parent, name = os.path.split(os.path.normpath(os.path.abspath(lr_dir)))
    with owned(parent, name):
        return _make_lr(paths, lr_dir, scale, hr_out_dir, desc, workers, note)


def _make_lr(paths, lr_dir, scale, hr_out_dir, desc, workers, note):
    if hr_out_dir:
        os.makedirs(hr_out_dir, exist_ok=True)
    lr_record = Sources(lr_dir, note)
    hr_record = Sources(hr_out_dir, note) if hr_out_dir else None
    lr_made_with, hr_made_with = dict(LR_MADE_WITH, scale=scale), {'copy': 'png'}
    names = {os.path.splitext(os.path.basename(p))[0] + '.png' for p in paths}
    _remove_orphans(lr_dir, lr_record, names, 'LR', note)
    if hr_record is not None:
        _remove_orphans(hr_out_dir, hr_record, names, 'HR', note)
    jobs, stale = [], []
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0] + '.png'
        lr_path = os.path.join(lr_dir, name)
        hr_path = os.path.join(hr_out_dir, name) if hr_out_dir else None
        h, w = _size(path)
        source = digest(path)
        lr_ok = _intact(lr_path, (h // scale, w // scale)) and lr_record.matches(name, source, lr_made_with, lr_path)
        hr_ok = hr_path is None or (_intact(hr_path, (h, w)) and hr_record.matches(name, source, hr_made_with,
                                                                                     hr_path))
        if not (lr_ok and hr_ok):
            if os.path.exists(lr_path) and lr_record.entries.get(name) is not None:
                stale.append(name)
            jobs.append((path, None if lr_ok else lr_path, None if hr_ok else hr_path, scale, name, source))
    if stale:
        note(f'note: {len(stale)} LR image(s) in {lr_dir} are not what was made from their HR images as they are now '
             f'(an HR image changed, or the LR image was edited; e.g. {stale[0]}): made again')

    def made(job):
        stopping.check()  # every image: a Ctrl-C whose first raise was lost still stops the run
        lr_record.add(job[4], job[5], lr_made_with, os.path.join(lr_dir, job[4]))
        if hr_record is not None:
            hr_record.add(job[4], job[5], hr_made_with, os.path.join(hr_out_dir, job[4]))

    bar = tqdm(total=len(paths), initial=len(paths) - len(jobs), desc=desc, unit='img')
    try:
        if workers > 1 and len(jobs) > 1:
            # spawned, not forked: a child forked from a process whose torch/OpenMP threads are running can deadlock
            with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context('spawn'),
                                     initializer=_single_threaded) as pool:
                futures = {pool.submit(_make_one_lr, *job[:4]): job for job in jobs}
                for future in as_completed(futures):
                    future.result()
                    made(futures[future])
                    bar.update()
        else:
            for job in jobs:
                _make_one_lr(*job[:4])
                made(job)
                bar.update()
    finally:  # what was made is recorded, Ctrl-C included, so that a rerun keeps it
        bar.close()
        lr_record.save()
        if hr_record is not None:
            hr_record.save()
    return len(jobs)


def _remove_orphans(folder, record, names, what, note):
    """The outputs of ours (recorded) in ``folder`` whose source image is no longer among the inputs: removed, with
    their entries, and said once. Files the record does not name are never touched."""
    gone = sorted(n for n in record.entries if n not in names)
    for name in gone:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            os.remove(path)
        record.forget(name)
    if gone:
        record.save()
        note(f'note: {len(gone)} {what} image(s) in {folder} were made from images no longer among the inputs (e.g. '
             f'{gone[0]}): removed')


def _note(line):
    print(line, file=sys.stderr)


def _single_threaded():
    torch.set_num_threads(1)  # one process per core already


def _make_one_lr(path, lr_path, hr_path, scale):
    """The LR image (and the HR copy) of ``path``; None for one that is kept."""
    hr = _read(path)
    if hr_path:
        write_image(hr_path, hr)
    if lr_path:
        write_image(lr_path, bicubic_lr(hr, scale)[1])


def _size(path):
    """(h, w) from the image header (no decoding)."""
    try:
        return image_size(path)
    except ImageError as err:
        raise ImageError(f'{err.reason}; remove or replace it and rerun', err.path) from None


def _intact(path, hw):
    """Whether an output of an earlier run is there and complete (decodes, at the expected size), so a rerun
    keeps it; anything else in our output folder is made again."""
    if not os.path.exists(path):
        return False
    try:
        return read_image(path).shape[:2] == tuple(hw)
    except ImageError:
        return False


def extract_subimages(in_dir: str, out_dir: str, crop_size: int, step: int, thresh_size: int = 0,
                      desc: str = 'sub-images', note: Optional[Callable[[str], None]] = None) -> int:
    """Crop overlapping ``crop_size`` squares with ``step`` (BasicSR's extract_subimages scheme): names
    ``<img>_s001.png`` ...; a leftover border wider than ``thresh_size`` gets one more crop flush with the edge.
    Images smaller than the crop are skipped with a count. A crop an earlier run made is kept when it is complete
    and recorded as made from the image as it is now (rerunnable); a stale one is made again, with a note."""
    note = note or _note
    paths = images_in(in_dir)
    os.makedirs(out_dir, exist_ok=True)
    record = Sources(out_dir)
    skipped, stale = 0, 0
    try:
        for path in tqdm(paths, desc=desc, unit='img'):
            stopping.check()
            stem = os.path.splitext(os.path.basename(path))[0].replace('.', '_')
            source = digest(path)
            img = _read(path)
            h, w = img.shape[:2]
            if h < crop_size or w < crop_size:
                skipped += 1
                continue
            tops = window_starts(h, crop_size, step, thresh_size)
            lefts = window_starts(w, crop_size, step, thresh_size)
            index = 0
            for y in tops:
                for x in lefts:
                    index += 1
                    name = f'{stem}_s{index:03d}.png'
                    out, made_with = os.path.join(out_dir, name), {'crop': crop_size, 'at': [y, x]}
                    if _intact(out, (crop_size, crop_size)) and record.matches(name, source, made_with):
                        continue
                    stale += record.entries.get(name) is not None
                    write_image(out, np.ascontiguousarray(img[y:y + crop_size, x:x + crop_size]))
                    record.add(name, source, made_with)
    finally:
        record.save()
    if stale:
        note(f'note: {stale} sub-image(s) in {out_dir} were cut from other versions of their images and were made '
             'again')
    return skipped


def make_lmdb(img_dirs: Union[str, Sequence[str]], lmdb_path: str, fmt: str = 'decoded', mod: int = 1,
              compress_level: int = 1, desc: str = 'LMDB', replace: bool = False) -> int:
    """An LMDB of every image in ``img_dirs`` (a folder or a list of folders), keyed by file name without
    extension: ``fmt='decoded'`` for ``PairedCropDataset``, ``'png'`` for BasicSR's ``PairedImageDataset``
    (see ``lmdb_store``). ``mod`` crops each image to a multiple of it (GT for LQ made at that scale). Resumable;
    it records what it was made from (``files/sources.py``); an existing LMDB is never touched unless ``replace``
    (a stale one of ours, remade)."""
    items = _lmdb_items(img_dirs)
    sources = {k: (digest(p), _lmdb_made_with(fmt, mod)) for k, p in items}
    return write_lmdb(items, lmdb_path, fmt, lambda p: mod_crop(_read(p), mod), compress_level, desc, sources,
                      replace)


def _lmdb_items(img_dirs):
    dirs = [img_dirs] if isinstance(img_dirs, str) else list(img_dirs)
    return [(os.path.splitext(os.path.basename(p))[0], p) for d in dirs for p in images_in(d)]


def _lmdb_made_with(fmt, mod):
    return {'format': fmt, 'mod_crop': mod}


def read_lmdb_keys(lmdb_path: str) -> List[str]:
    return [key for key, _, _ in parse_meta(os.path.join(lmdb_path, 'meta_info.txt'))]


def _stale_lmdb(path, img_dirs, fmt, mod, note):
    """Whether an existing LMDB of ours is not what these images make now: made from other versions of them, from
    another set of images (some removed or added since), or itself changed since it was made (its ``data.mdb``
    size or its ``meta_info.txt``). It is then made again, with a note. One without a record (an older version or
    another tool made it) is kept when its keys are these images' names, with a note that it cannot be checked."""
    record = Sources(path, note)
    items = _lmdb_items(img_dirs)
    keys = set(read_lmdb_keys(path))
    if record.malformed:  # ours by its record's name, and nothing says what it holds: made again
        return True
    if not record.exists:
        if keys != {k for k, _ in items}:
            raise OutputExists(path, 'exists and is not the LMDB of these images, and no record says this package '
                                     'made it; it is never overwritten: remove it or choose another path')
        note(f'note: {path} has no record of what it was made from (an older version or another tool made it): it '
             'is used as it is; remove it to make it from these images')
        return False
    wanted = {k for k, _ in items}
    if keys != wanted:
        gone, new = sorted(keys - wanted), sorted(wanted - keys)
        parts = ([f'{len(gone)} no longer among the inputs, e.g. {gone[0]}'] if gone else []) + (
            [f'{len(new)} new, e.g. {new[0]}'] if new else [])
        note(f"note: {path} holds other images than these ({'; '.join(parts)}): it is made again")
        return True
    if record.made is None:  # a record from before LMDBs were fingerprinted: verified above, fingerprinted now
        record.made = lmdb_fingerprint(path)
        record.save()
    elif not record.made_matches(lmdb_fingerprint(path)):
        note(f'note: {path} changed since it was made (its data.mdb or meta_info.txt): it is made again')
        return True
    changed = [k for k, p in items if not record.matches(k, digest(p), _lmdb_made_with(fmt, mod))]
    if changed:
        note(f'note: {path} was made from other versions of {len(changed)} of its images (e.g. {changed[0]}); it is '
             'made again')
    return bool(changed)


def lmdb_fingerprint(path: str) -> Optional[dict]:
    """What an LMDB was when made: its data.mdb's size and its meta_info.txt's SHA-256 (reading 30 GB of pixels on
    every rerun to check them would cost more than making them)."""
    data, meta = os.path.join(path, 'data.mdb'), os.path.join(path, 'meta_info.txt')
    return {'data.mdb': os.path.getsize(data) if os.path.isfile(data) else None,
            'meta_info.txt': digest(meta) if os.path.isfile(meta) else None}


def _drop_replaced(path, note):
    """A replaced LMDB a kill left beside its successor (``<path>.stale``): removed once the successor is whole."""
    old = path + '.stale'
    if os.path.exists(old) and os.path.exists(path):
        shutil.rmtree(old, ignore_errors=True)
        note(f'note: removed {old}, the LMDB {path} replaced (an earlier run was stopped before removing it)')


def make_paired_lmdb(gt_dirs: Union[str, Sequence[str]], lq_dir: str, gt_lmdb: str, lq_lmdb: str,
                     fmt: str = 'decoded', scale: int = 4, note: Optional[Callable[[str], None]] = None) -> int:
    """GT and LQ LMDBs with identical key sets (checked before writing anything). GT images are mod-cropped to
    ``scale``, so that they are exactly LQ x scale when the LQ images were made from the mod-cropped GT (as
    ``make_lr`` makes them). A finished LMDB of the same format and sources is kept (so a rerun after an
    interruption continues with the other one); one of ours that these images no longer make is made again (with a
    note); one that is not ours and not of these images, or of another format, is an error, never overwritten. One
    run at a time holds each LMDB (a second one ends with one line naming the first)."""
    note = note or _note
    gt_dirs = [gt_dirs] if isinstance(gt_dirs, str) else list(gt_dirs)
    if os.path.abspath(os.path.realpath(gt_lmdb)) == os.path.abspath(os.path.realpath(lq_lmdb)):
        raise OptionsError(f'{lq_lmdb} is the GT LMDB too; GT and LQ need an LMDB each', 'lq_lmdb')
    with contextlib.ExitStack() as held:
        for path in sorted((gt_lmdb, lq_lmdb)):
            parent, name = os.path.split(os.path.normpath(os.path.abspath(path)))
            held.enter_context(owned(parent, name))
        return _make_paired_lmdb(gt_dirs, lq_dir, gt_lmdb, lq_lmdb, fmt, scale, note)


def _make_paired_lmdb(gt_dirs, lq_dir, gt_lmdb, lq_lmdb, fmt, scale, note):
    gt_names = [os.path.splitext(os.path.basename(p))[0] for d in gt_dirs for p in images_in(d)]
    lq_names = {os.path.splitext(os.path.basename(p))[0] for p in images_in(lq_dir)}
    if set(gt_names) != lq_names:
        only = sorted(set(gt_names) ^ lq_names)[:5]
        raise DataError(f'the GT and LQ folders hold different image names (e.g. {only}); make LR for every GT '
                        'image (basicsr prepare lr makes the missing ones and removes those of images gone)', lq_dir)
    for path in (gt_lmdb, lq_lmdb):
        _drop_replaced(path, note)
        if os.path.exists(path) and lmdb_format(path) != fmt:
            raise OutputExists(path, f'exists and is not a {fmt} LMDB; it is never overwritten: remove it or choose '
                                     'another path')
        if os.path.exists(path):  # kept only whole (a copy cut short would kill training with SIGBUS)
            try:
                verify_lmdb(path)
            except DataError as err:
                if not Sources(path).exists:
                    raise OutputExists(path, f'exists but is damaged ({err.reason.split(":")[0]}); it is never '
                                             'overwritten: remove it to make it again') from None
                note(f'note: {path} is damaged ({err.reason.split(":")[0]}): it is made again')
                shutil.rmtree(path)
    for path, dirs, mod, desc in ((gt_lmdb, gt_dirs, scale, 'GT LMDB'), (lq_lmdb, [lq_dir], 1, 'LQ LMDB')):
        if not os.path.exists(path):
            make_lmdb(dirs, path, fmt, mod=mod, desc=desc)
        elif _stale_lmdb(path, dirs, fmt, mod, note):
            make_lmdb(dirs, path, fmt, mod=mod, desc=desc, replace=True)  # its write removes the one it replaced
    if set(read_lmdb_keys(gt_lmdb)) != set(read_lmdb_keys(lq_lmdb)):
        raise DataError(f'ended up with other keys than {lq_lmdb}', gt_lmdb)
    return len(lq_names)


def prepare_df2k(hr_dirs: Union[str, Sequence[str]], root: str = 'datasets/DF2K', fmt: str = 'decoded',
                 scale: int = 4, crop: int = 960, step: int = 480, workers: int = 1,
                 prefix: str = 'DF2K') -> Tuple[str, str]:
    """The training LMDBs of the schedule from HR folders (DIV2K_train_HR, Flickr2K_HR). Returns (gt, lq) paths.

    decoded (default): x4 LR of every whole HR image (``<root>/DF2K_LR_bicubic_X4/``, PNG), then decoded GT and
    LQ LMDBs of the whole images (``DF2K_HR.lmdb``, ``DF2K_LR_bicubic_X4.lmdb``) for ``PairedCropDataset``: whole
    images serve random crops of any size directly. png: BasicSR's way for ``PairedImageDataset``: ``crop``-px
    sub-images every ``step`` px (PNG decoding of a whole sub-image per sample is the cost that bounds it).
    Every step keeps what exists, so a rerun continues an interrupted one. ``prefix``: the names' first part (DF2K:
    the names the option files read)."""
    hr_images = [p for d in hr_dirs for p in images_in(d)]
    names = [os.path.splitext(os.path.basename(p))[0] for p in hr_images]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f'image names repeat across the HR folders (e.g. {dup[:3]}); they key the LMDBs and must '
                        'be unique')
    # before any work: the root can be written, with room for all of it (the LR images, and the pixels of the two
    # LMDBs; the png format's crops and LMDBs take about as much)
    pixels = sum(3 * h * w for h, w in map(image_size, hr_images))
    output_dir(root, need_bytes=pixels + 2 * pixels // scale ** 2)
    if fmt == 'png':
        if crop % scale:
            raise OptionsError(f'{crop} is not a multiple of the scale {scale}', 'crop')
        hr = os.path.join(root, f'{prefix}_HR_sub{crop}')
        lr = os.path.join(root, f'{prefix}_LR_bicubic_X{scale}_sub{crop // scale}')
        for folder in hr_dirs:
            extract_subimages(folder, hr, crop, step, desc=f'crops of {os.path.basename(folder)}')
        hr_dirs = [hr]
    else:
        lr = os.path.join(root, f'{prefix}_LR_bicubic_X{scale}')
        hr = os.path.join(root, f'{prefix}_HR')
    make_lr(hr_dirs, lr, scale, desc=f'x{scale} LR', workers=workers)
    gt_lmdb, lq_lmdb = gt_lmdb_name(hr + '.lmdb', scale), lr + '.lmdb'
    make_paired_lmdb(hr_dirs, lr, gt_lmdb, lq_lmdb, fmt, scale)
    return gt_lmdb, lq_lmdb


def prepare_benchmark(hr_dir: str, name: str, root: str = 'datasets/benchmark',
                      scales: Sequence[int] = (4,)) -> str:
    """``<root>/<name>/HR`` and ``<root>/<name>/LR_bicubic/X<s>`` from an HR-only folder."""
    out = os.path.join(root, name)
    for s in scales:
        make_lr(hr_dir, os.path.join(out, 'LR_bicubic', f'X{s}'), s, hr_out_dir=os.path.join(out, 'HR'),
                desc=f'{name} x{s}')
    return out
