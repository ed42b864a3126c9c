"""Data preparation the PyPI basicsr does not ship: LR by MATLAB-style bicubic, sub-images, paired LMDBs and the
benchmark layout. Every step shows progress with ETA, keeps what exists and can be rerun after an interruption.
"""
import os
import shutil

import cv2
import numpy as np
from tqdm import tqdm

from basicsr.utils.matlab_functions import imresize

from ..errors import UserError
from ..evaluate import list_images, mod_crop

BENCHMARK_SETS = ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109')


def _read(path):
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise UserError(f'cannot read image {path}; remove or replace it and rerun')
    return img


def _images_in(folder):
    if not os.path.isdir(folder):
        raise UserError(f'input folder not found: {folder}')
    paths = list_images(folder)
    if not paths:
        raise UserError(f'no images (png, jpg, bmp, tif, webp) in {folder}')
    return paths


def _write_atomic(path, img):
    """Write via a temporary name so an interrupted run never leaves a half-written image under the real name."""
    tmp = path + '.tmp.png'
    if not cv2.imwrite(tmp, img):
        raise UserError(f'cannot write {path}')
    os.replace(tmp, path)


def bicubic_downscale(img, scale):
    """uint8 BGR HR -> uint8 LR, MATLAB-style bicubic with antialiasing (BasicSR's imresize)."""
    lr = imresize(img.astype(np.float32) / 255.0, 1 / scale)
    return (np.clip(lr, 0, 1) * 255.0).round().astype(np.uint8)


def make_lr(hr_dir, lr_dir, scale, hr_out_dir=None, desc='LR'):
    """LR images for every HR image (mod-cropped to the scale first). Existing outputs are kept, so a rerun
    finishes an interrupted one. With ``hr_out_dir`` the HR images are copied there as PNG, uncropped (BasicSR
    crops GT to LR size x scale at test time)."""
    if scale not in (2, 3, 4):
        raise UserError(f'scale must be 2, 3 or 4, got {scale}')
    paths = _images_in(hr_dir)
    os.makedirs(lr_dir, exist_ok=True)
    if hr_out_dir:
        os.makedirs(hr_out_dir, exist_ok=True)
    made = 0
    for path in tqdm(paths, desc=desc, unit='img'):
        name = os.path.splitext(os.path.basename(path))[0] + '.png'
        lr_path = os.path.join(lr_dir, name)
        hr_path = os.path.join(hr_out_dir, name) if hr_out_dir else None
        if os.path.exists(lr_path) and (hr_path is None or os.path.exists(hr_path)):
            continue
        hr = _read(path)
        if hr_path and not os.path.exists(hr_path):
            _write_atomic(hr_path, hr)
        if not os.path.exists(lr_path):
            _write_atomic(lr_path, bicubic_downscale(mod_crop(hr, scale), scale))
        made += 1
    return made


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
                if not os.path.exists(out):
                    _write_atomic(out, np.ascontiguousarray(img[y:y + crop_size, x:x + crop_size]))
    return skipped


def window_starts(length, size, step, thresh=0):
    """Start offsets of windows of ``size`` every ``step`` along ``length``; a leftover wider than ``thresh``
    gets one more window flush with the end. A length within one window gives [0]. (Sub-images and tiles.)"""
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, step))
    if length - (starts[-1] + size) > thresh:
        starts.append(length - size)
    return starts


def make_lmdb(img_dir, lmdb_path, compress_level=1, desc='LMDB'):
    """An LMDB as BasicSR's ``PairedImageDataset`` reads it: PNG bytes under the name before the first dot,
    ``meta_info.txt`` with ``name.png (h,w,c) compress_level``. Built under ``<path>.partial`` and renamed at the
    end, so an interrupted run leaves no half-made LMDB under the real name; an existing LMDB is never touched."""
    import lmdb

    if not lmdb_path.endswith('.lmdb'):
        raise UserError(f'LMDB path must end in .lmdb (BasicSR requires it): {lmdb_path}')
    if os.path.exists(lmdb_path):
        raise UserError(f'{lmdb_path} already exists; remove it or choose another path (it is never overwritten)')
    paths = _images_in(img_dir)
    keys = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    dotted = [k for k in keys if '.' in k]
    if dotted:
        raise UserError(f'LMDB keys cannot contain dots (BasicSR splits on the first one): {dotted[:3]}; rename '
                        'those files')
    partial = lmdb_path + '.partial'
    shutil.rmtree(partial, ignore_errors=True)  # our own leftover from an interrupted run
    total = sum(os.path.getsize(p) for p in paths)
    env = lmdb.open(partial, map_size=max(total * 10, 1 << 26))
    meta = []
    txn = env.begin(write=True)
    for i, (path, key) in enumerate(tqdm(list(zip(paths, keys)), desc=desc, unit='img')):
        img = _read(path)
        ok, buf = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
        if not ok:
            raise UserError(f'cannot encode {path}')
        txn.put(key.encode('ascii'), buf.tobytes())
        h, w, c = img.shape
        meta.append(f'{key}.png ({h},{w},{c}) {compress_level}\n')
        if (i + 1) % 1000 == 0:
            txn.commit()
            txn = env.begin(write=True)
    txn.commit()
    env.close()
    with open(os.path.join(partial, 'meta_info.txt'), 'w') as f:
        f.writelines(meta)
    os.rename(partial, lmdb_path)
    return len(keys)


def read_lmdb_keys(lmdb_path):
    with open(os.path.join(lmdb_path, 'meta_info.txt')) as f:
        return [line.split('.')[0] for line in f if line.strip()]


def make_paired_lmdb(gt_dir, lq_dir, gt_lmdb, lq_lmdb, scale=None):
    """GT and LQ LMDBs with identical key sets (checked before writing anything); with ``scale`` the sizes are
    checked to match too."""
    gt_names = {os.path.splitext(os.path.basename(p))[0] for p in _images_in(gt_dir)}
    lq_names = {os.path.splitext(os.path.basename(p))[0] for p in _images_in(lq_dir)}
    if gt_names != lq_names:
        only = sorted(gt_names ^ lq_names)[:5]
        raise UserError(f'GT and LQ folders hold different image names (e.g. {only}); make LR for every GT image')
    for path in (gt_lmdb, lq_lmdb):
        if os.path.exists(path):
            raise UserError(f'{path} already exists; remove it or choose another path (it is never overwritten)')
    make_lmdb(gt_dir, gt_lmdb, desc='GT LMDB')
    make_lmdb(lq_dir, lq_lmdb, desc='LQ LMDB')
    if read_lmdb_keys(gt_lmdb) != read_lmdb_keys(lq_lmdb):
        raise UserError(f'{gt_lmdb} and {lq_lmdb} ended up with different keys')
    return len(gt_names)


def prepare_benchmark(hr_dir, name, root='datasets/benchmark', scales=(4,)):
    """``<root>/<name>/HR`` and ``<root>/<name>/LR_bicubic/X<s>`` from an HR-only folder."""
    out = os.path.join(root, name)
    for s in scales:
        make_lr(hr_dir, os.path.join(out, 'LR_bicubic', f'X{s}'), s, hr_out_dir=os.path.join(out, 'HR'),
                desc=f'{name} x{s}')
    return out
