"""Data preparation the PyPI basicsr does not ship: LR by MATLAB-style bicubic, sub-images, paired LMDBs (decoded
for ``PairedCropDataset``, or PNG for BasicSR's ``PairedImageDataset``) and the benchmark layout. Every step shows
progress with ETA, keeps what exists and can be rerun after an interruption.
"""
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

import cv2
import numpy as np
from tqdm import tqdm

from ..deploy.tiles import window_starts
from ..errors import DataError, ImageError, OptionsError, OutputExists
from ..files.images import image_size, list_images, read_image, write_image
from ..recipe.protocol import bicubic_lr, mod_crop
from .lmdb_store import lmdb_format, parse_meta, verify_lmdb, write_lmdb


def _read(path):
    try:
        return read_image(path, cv2.IMREAD_COLOR)
    except ImageError as err:
        raise ImageError(f'{err.reason}; remove or replace it and rerun', err.path) from None


def _images_in(folder):
    if not os.path.isdir(folder):
        raise DataError('input folder not found', folder)
    paths = list_images(folder)
    if not paths:
        raise DataError('no images (png, jpg, bmp, tif, webp) here', folder)
    return paths


def make_lr(hr_dir, lr_dir, scale, hr_out_dir=None, desc='LR', workers=1):
    """LR images for every HR image (mod-cropped to the scale first). Existing outputs are kept, so a rerun
    finishes an interrupted one. With ``hr_out_dir`` the HR images are copied there as PNG, uncropped (BasicSR
    crops GT to LR size x scale at test time). ``workers`` > 1 runs that many processes (the bicubic resize is
    the slow part: about a second per 2K image). Returns the number of images made."""
    if scale not in (2, 3, 4):
        raise OptionsError(f'must be 2, 3 or 4, got {scale}', 'scale')
    paths = _images_in(hr_dir)
    os.makedirs(lr_dir, exist_ok=True)
    if hr_out_dir:
        os.makedirs(hr_out_dir, exist_ok=True)
    jobs = []
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0] + '.png'
        lr_path = os.path.join(lr_dir, name)
        hr_path = os.path.join(hr_out_dir, name) if hr_out_dir else None
        h, w = _size(path)
        if not (_intact(lr_path, (h // scale, w // scale)) and (hr_path is None or _intact(hr_path, (h, w)))):
            jobs.append((path, lr_path, hr_path, scale))
    bar = tqdm(total=len(paths), initial=len(paths) - len(jobs), desc=desc, unit='img')
    if workers > 1 and len(jobs) > 1:
        # spawned, not forked: a child forked from a process whose torch/OpenMP threads are running can deadlock
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context('spawn'),
                                 initializer=_single_threaded) as pool:
            for future in as_completed([pool.submit(_make_one_lr, *job) for job in jobs]):
                future.result()
                bar.update()
    else:
        for job in jobs:
            _make_one_lr(*job)
            bar.update()
    bar.close()
    return len(jobs)


def _single_threaded():
    import torch
    torch.set_num_threads(1)  # one process per core already


def _make_one_lr(path, lr_path, hr_path, scale):
    hr = _read(path)
    if hr_path and not _intact(hr_path, hr.shape[:2]):
        write_image(hr_path, hr)
    if not _intact(lr_path, (hr.shape[0] // scale, hr.shape[1] // scale)):
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


def extract_subimages(in_dir, out_dir, crop_size, step, thresh_size=0, desc='sub-images'):
    """Crop overlapping ``crop_size`` squares with ``step`` (BasicSR's extract_subimages scheme): names
    ``<img>_s001.png`` ...; a leftover border wider than ``thresh_size`` gets one more crop flush with the edge.
    Images smaller than the crop are skipped with a count. Existing crops are kept (rerunnable)."""
    paths = _images_in(in_dir)
    os.makedirs(out_dir, exist_ok=True)
    skipped = 0
    for path in tqdm(paths, desc=desc, unit='img'):
        stem = os.path.splitext(os.path.basename(path))[0].replace('.', '_')
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
                out = os.path.join(out_dir, f'{stem}_s{index:03d}.png')
                if not _intact(out, (crop_size, crop_size)):
                    write_image(out, np.ascontiguousarray(img[y:y + crop_size, x:x + crop_size]))
    return skipped


def make_lmdb(img_dirs, lmdb_path, fmt='decoded', mod=1, compress_level=1, desc='LMDB'):
    """An LMDB of every image in ``img_dirs`` (a folder or a list of folders), keyed by file name without
    extension: ``fmt='decoded'`` for ``PairedCropDataset``, ``'png'`` for BasicSR's ``PairedImageDataset``
    (see ``lmdb_store``). ``mod`` crops each image to a multiple of it (GT for LQ made at that scale). Resumable;
    an existing LMDB is never touched."""
    dirs = [img_dirs] if isinstance(img_dirs, str) else list(img_dirs)
    paths = [p for d in dirs for p in _images_in(d)]
    items = [(os.path.splitext(os.path.basename(p))[0], p) for p in paths]
    return write_lmdb(items, lmdb_path, fmt, lambda p: mod_crop(_read(p), mod), compress_level, desc)


def read_lmdb_keys(lmdb_path):
    return [key for key, _, _ in parse_meta(os.path.join(lmdb_path, 'meta_info.txt'))]


def make_paired_lmdb(gt_dirs, lq_dir, gt_lmdb, lq_lmdb, fmt='decoded', scale=4):
    """GT and LQ LMDBs with identical key sets (checked before writing anything). GT images are mod-cropped to
    ``scale``, so that they are exactly LQ x scale when the LQ images were made from the mod-cropped GT (as
    ``make_lr`` makes them). A finished LMDB of the same format and keys is kept (so a rerun after an interruption
    continues with the other one); one that differs is an error, never overwritten."""
    gt_dirs = [gt_dirs] if isinstance(gt_dirs, str) else list(gt_dirs)
    if os.path.abspath(os.path.realpath(gt_lmdb)) == os.path.abspath(os.path.realpath(lq_lmdb)):
        raise OptionsError(f'{lq_lmdb} is the GT LMDB too; GT and LQ need an LMDB each', 'lq_lmdb')
    gt_names = [os.path.splitext(os.path.basename(p))[0] for d in gt_dirs for p in _images_in(d)]
    lq_names = {os.path.splitext(os.path.basename(p))[0] for p in _images_in(lq_dir)}
    if set(gt_names) != lq_names:
        only = sorted(set(gt_names) ^ lq_names)[:5]
        raise DataError(f'the GT and LQ folders hold different image names (e.g. {only}); make LR for every GT '
                        'image', lq_dir)
    for path in (gt_lmdb, lq_lmdb):
        if os.path.exists(path) and (lmdb_format(path) != fmt or set(read_lmdb_keys(path)) != lq_names):
            raise OutputExists(path, f'exists and is not the {fmt} LMDB of these images; it is never overwritten: '
                                     'remove it or choose another path')
        if os.path.exists(path):  # kept only whole (a copy cut short would kill training with SIGBUS)
            try:
                verify_lmdb(path)
            except DataError as err:
                raise OutputExists(path, f'exists but is damaged ({err.reason.split(":")[0]}); it is never '
                                         'overwritten: remove it to make it again') from None
    if not os.path.exists(gt_lmdb):
        make_lmdb(gt_dirs, gt_lmdb, fmt, mod=scale, desc='GT LMDB')
    if not os.path.exists(lq_lmdb):
        make_lmdb(lq_dir, lq_lmdb, fmt, desc='LQ LMDB')
    if set(read_lmdb_keys(gt_lmdb)) != set(read_lmdb_keys(lq_lmdb)):
        raise DataError(f'ended up with other keys than {lq_lmdb}', gt_lmdb)
    return len(lq_names)


def prepare_df2k(hr_dirs, root='datasets/DF2K', fmt='decoded', scale=4, crop=960, step=480, workers=1):
    """The training LMDBs of the schedule from HR folders (DIV2K_train_HR, Flickr2K_HR). Returns (gt, lq) paths.

    decoded (default): x4 LR of every whole HR image (``<root>/DF2K_LR_bicubic_X4/``, PNG), then decoded GT and
    LQ LMDBs of the whole images (``DF2K_HR.lmdb``, ``DF2K_LR_bicubic_X4.lmdb``) for ``PairedCropDataset``: whole
    images serve random crops of any size directly. png: BasicSR's way for ``PairedImageDataset``: ``crop``-px
    sub-images every ``step`` px (PNG decoding of a whole sub-image per sample is the cost that bounds it).
    Every step keeps what exists, so a rerun continues an interrupted one."""
    names = [os.path.splitext(os.path.basename(p))[0] for d in hr_dirs for p in _images_in(d)]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f'image names repeat across the HR folders (e.g. {dup[:3]}); they key the LMDBs and must '
                        'be unique')
    if fmt == 'png':
        if crop % scale:
            raise OptionsError(f'{crop} is not a multiple of the scale {scale}', 'crop')
        hr = os.path.join(root, f'DF2K_HR_sub{crop}')
        lr = os.path.join(root, f'DF2K_LR_bicubic_X{scale}_sub{crop // scale}')
        for folder in hr_dirs:
            extract_subimages(folder, hr, crop, step, desc=f'crops of {os.path.basename(folder)}')
        hr_dirs = [hr]
    else:
        lr = os.path.join(root, f'DF2K_LR_bicubic_X{scale}')
        hr = os.path.join(root, 'DF2K_HR')
    for folder in hr_dirs:
        make_lr(folder, lr, scale, desc=f'x{scale} LR of {os.path.basename(folder.rstrip(os.sep))}', workers=workers)
    gt_lmdb, lq_lmdb = hr + '.lmdb', lr + '.lmdb'
    make_paired_lmdb(hr_dirs, lr, gt_lmdb, lq_lmdb, fmt, scale)
    return gt_lmdb, lq_lmdb


def prepare_benchmark(hr_dir, name, root='datasets/benchmark', scales=(4,)):
    """``<root>/<name>/HR`` and ``<root>/<name>/LR_bicubic/X<s>`` from an HR-only folder."""
    out = os.path.join(root, name)
    for s in scales:
        make_lr(hr_dir, os.path.join(out, 'LR_bicubic', f'X{s}'), s, hr_out_dir=os.path.join(out, 'HR'),
                desc=f'{name} x{s}')
    return out
