"""Checks of a run's datasets against the files they name, before BasicSR writes anything, one function per mistake:
folders and LMDBs there and whole, the keys each dataset class reads, a training set that fills a batch, LR/HR
pairs that agree with the scale, training crops that fit the images, and a test yml's missing benchmark sets left
out. ``RunOptions.check`` calls them with the rest of ``preflight``."""
from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Tuple

from ..data.lmdb_store import gt_lmdb_name, lmdb_format, lq_sizes, verify_lmdb
from ..data.paired_crop_dataset import too_small
from ..errors import DataError, ImageError, OptionsError
from ..files.images import image_size, list_images
from ..layout.locations import WEIGHTS, WEIGHTS_URL

# The keys BasicSR's stock datasets (and ours) index without a default, by phase ('any' or 'train'), and the loader's.
DATASET_KEYS: Dict[str, Dict[str, Tuple[str, ...]]] = {
    'PairedImageDataset': {'any': ('dataroot_gt', 'dataroot_lq', 'io_backend'), 'train': ('gt_size', 'use_hflip',
                                                                                          'use_rot')},
    'PairedCropDataset': {'any': ('dataroot_gt', 'dataroot_lq'), 'train': ('gt_size',)},
    'SingleImageDataset': {'any': ('dataroot_lq', 'io_backend')},
}
LOADER_KEYS = ('batch_size_per_gpu', 'num_worker_per_gpu')
IO_BACKENDS = {'PairedImageDataset': "io_backend: {type: disk} for folders, {type: lmdb} for BasicSR's PNG LMDBs",
               'SingleImageDataset': 'io_backend: {type: disk}'}


def leave_out_missing_test_sets(opt: dict, path: str, notes: List[str]) -> None:
    """A test yml scores the benchmark sets that exist: one whose folders are not there is left out with a note
    (a user with Set5 alone runs the shipped yml as it is). When none is there, all stay, for ``missing_inputs`` to
    report with the rest."""
    datasets, missing = opt['datasets'], {}
    for phase, ds in list(datasets.items()):
        absent = [ds[k] for k in ('dataroot_gt', 'dataroot_lq') if ds.get(k)
                  and not os.path.exists(os.path.expanduser(ds[k]))]
        if absent and phase.startswith('test'):
            missing[phase] = (ds.get('name', phase), absent[0])
    if len(missing) == len(datasets):
        return
    for phase, (name, root) in missing.items():
        del datasets[phase]
        notes.append(f'datasets.{phase} ({name}) is left out: {root} not found ('
                     f'{make_command(root, opt["scale"])} makes it)')


def make_command(path: str, scale: int) -> str:
    """The command that makes a missing dataset folder or LMDB ``path`` of a yml of this ``scale``: ``basicsr prepare
    benchmark`` for a benchmark set's HR or LR folder, ``basicsr prepare df2k`` for the training LMDBs it names (any
    folders of HR images), the smoke schedule for its own data; else ``basicsr prepare lmdb`` or ``lr``."""
    norm = os.path.normpath(path).replace(os.sep, '/')
    found = re.fullmatch(r'(?:(.*)/)?([^/]+)/(HR|LR_bicubic/X(\d+))', norm)
    if found and not norm.endswith('.lmdb'):
        root, name, _, lr_scale = found.groups()
        root_flag = '' if (root or '.') == 'datasets/benchmark' else f' --root {root or "."}'
        scales = f' --scales {lr_scale}' if lr_scale and lr_scale != '4' else (
            f' --scales {scale}' if not lr_scale and scale != 4 else '')
        return f'basicsr prepare benchmark --hr <folder of {name}\'s HR images> --name {name}{root_flag}{scales}'
    if norm == 'datasets/smoke' or norm.startswith('datasets/smoke/'):
        return 'basicsr schedule --profile smoke'
    root, base = os.path.split(norm)
    scale_flag = f' --scale {scale}' if scale != 4 else ''
    root_flag = '' if root == 'datasets/DF2K' else f' --root {root or "."}'
    if base in (gt_lmdb_name('DF2K_HR.lmdb', scale), f'DF2K_LR_bicubic_X{scale}.lmdb', f'DF2K_LR_bicubic_X{scale}'):
        return f'basicsr prepare df2k --hr <folders of HR images>{root_flag}{scale_flag}'
    if base.endswith('.lmdb'):
        return ('basicsr prepare lmdb --gt <HR folder> --lq <LR folder> --gt-lmdb <GT LMDB> --lq-lmdb <LQ LMDB>'
                f'{scale_flag}')
    return f'basicsr prepare lr --hr <HR folder> --out {path}{scale_flag}'


def missing_inputs(opt: dict, is_train: bool, pretrained: bool, auto_resume: bool) -> List[Tuple[str, str]]:
    """Every input of a run that is not there, as (what, the command or step that makes it): the datasets' folders
    and LMDBs, and the checkpoints ``path.pretrain_network_*`` names (when ``pretrained``; an auto-resumed training
    run loads its own save instead)."""
    missing = []
    for phase, ds in opt['datasets'].items():
        for key in ('dataroot_gt', 'dataroot_lq'):
            root = ds.get(key)
            if root and not os.path.exists(os.path.expanduser(root)):
                missing.append((root, make_command(root, opt['scale'])))
    for key, value in (opt.get('path') or {}).items() if pretrained else ():
        if not (value and key.startswith('pretrain_network')) or os.path.isfile(os.path.expanduser(value)):
            continue
        if auto_resume and key == 'pretrain_network_g' and is_train:
            continue
        if os.path.basename(value) == os.path.basename(WEIGHTS):
            how = f'mkdir -p {os.path.dirname(value) or "."} && curl -L -o {value} {WEIGHTS_URL}'
        else:
            how = f'put the checkpoint there, or pass --force_yml path:{key}=<checkpoint>'
        missing.append((value, how))
    return missing


def check_checkpoint_paths(opt: dict) -> None:
    """A checkpoint or training state named by a folder: it is there, just not a file, and the line says so (else
    it would read as missing)."""
    for key, value in (opt.get('path') or {}).items():
        if isinstance(value, str) and key.startswith(('pretrain_network', 'resume_state')) and \
                os.path.isdir(os.path.expanduser(value)):
            inside = 'net_g_latest.pth' if key.startswith('pretrain') else '<iter>.state'
            raise OptionsError(f'{value} is a folder, not a checkpoint file: give the file in it (e.g. '
                               f'{os.path.join(value, inside)})', f'path.{key}')


def describe_missing(missing: List[Tuple[str, str]]) -> str:
    """One line: the missing inputs, grouped by the command that makes them."""
    by_how: Dict[str, List[str]] = {}
    for what, how in missing:
        by_how.setdefault(how, []).append(what)
    def verb(how, many):
        if how.startswith('mkdir'):
            return 'download it: '
        return ('make them: ' if many else 'make it: ') if how.startswith('basicsr') else ''
    parts = [f"{' and '.join(whats)} ({verb(how, len(whats) > 1)}{how})" for how, whats in by_how.items()]
    count = f'{len(missing)} inputs are' if len(missing) > 1 else 'an input is'
    return f"{count} not there: {'; '.join(parts)}"


def check_dataset(opt: dict, phase: str, ds: dict) -> None:
    """The folders and LMDBs a dataset names: there, of the format its type reads, whole, and enough for a batch;
    folder pairs checked against the scale (``check_pairs``)."""
    for key in ('dataroot_gt', 'dataroot_lq'):
        root = ds.get(key)
        if not root:
            continue
        root = os.path.expanduser(root)
        where = f'datasets.{phase}.{key}'
        if not os.path.exists(root):
            raise OptionsError(f'not found: {ds[key]} (make it: {make_command(ds[key], opt["scale"])})', where)
        fmt = lmdb_format(root)
        if ds.get('type') == 'PairedCropDataset' and fmt != 'decoded':
            raise OptionsError(f'{ds[key]} is not a decoded LMDB, which PairedCropDataset reads; make one with '
                               'basicsr prepare lmdb (or df2k), or use type: PairedImageDataset with io_backend: '
                               '{type: ' + ('lmdb' if fmt else 'disk') + '}', where)
        if (ds.get('io_backend') or {}).get('type') == 'lmdb' and fmt != 'png':
            raise OptionsError(f'{ds[key]} is not a PNG LMDB made for BasicSR' + (
                ' (it holds decoded pixels: use type: PairedCropDataset)' if fmt else ' (no meta_info.txt)'), where)
        if fmt is not None:
            try:
                pairs = verify_lmdb(root)
            except DataError as err:
                raise OptionsError(f'{ds[key]}: {err.reason}', where) from None
            check_enough(phase, ds, pairs)
    check_pairs(opt, phase, ds)


def check_enough(phase: str, ds: dict, pairs: int) -> None:
    """BasicSR's training loader drops the last incomplete batch: fewer pairs (times dataset_enlarge_ratio) than
    a batch makes an epoch of no iterations, and the run ends at once with an untrained network."""
    if phase != 'train':
        return
    batch = ds.get('batch_size_per_gpu', 1)
    if pairs * ds.get('dataset_enlarge_ratio', 1) < batch:
        raise OptionsError(f'{pairs} pair(s) x dataset_enlarge_ratio {ds.get("dataset_enlarge_ratio", 1)} do not '
                           f'fill one batch of {batch}: lower batch_size_per_gpu or raise dataset_enlarge_ratio',
                           f'datasets.{phase}')


def check_pairs(opt: dict, phase: str, ds: dict) -> None:
    """Folder-based PairedImageDataset: every GT has its LR and their sizes agree with the scale (BasicSR asserts
    it mid-run: in training, after a checkpoint was written)."""
    if ds.get('type') != 'PairedImageDataset' or (ds.get('io_backend') or {}).get('type') != 'disk':
        return

    scale = opt['scale']
    gt_dir, lq_dir = (os.path.expanduser(ds[k]) for k in ('dataroot_gt', 'dataroot_lq'))
    template = ds.get('filename_tmpl', '{}')
    gts = list_images(gt_dir)
    if not gts:
        raise OptionsError(f'no images in {ds["dataroot_gt"]}', f'datasets.{phase}.dataroot_gt')
    check_enough(phase, ds, len(gts))
    for gt in gts:
        stem, ext = os.path.splitext(os.path.basename(gt))
        lq = os.path.join(lq_dir, template.format(stem) + ext)
        if not os.path.isfile(lq):
            raise OptionsError(f'{gt} has no LR image {lq}', f'datasets.{phase}')
        try:
            (gh, gw), (lh, lw) = image_size(gt), image_size(lq)
        except ImageError:
            continue  # the dataset's own reading reports what it cannot decode
        # training crops need GT = LR x scale; evaluation crops GT to LR x scale, so there the LR must be the
        # scale-cropped GT's: an LR a few pixels short would be scored against a cropped GT
        exact = phase == 'train'
        if (lw * scale, lh * scale) != (gw, gh) if exact else (lw, lh) != (gw // scale, gh // scale):
            raise OptionsError(f'{os.path.basename(lq)} is {lw}x{lh}, x{scale} = {lw * scale}x{lh * scale}, but '
                               f'its GT is {gw}x{gh}; the LR images must be the GT downscaled x{scale} (basicsr '
                               'prepare benchmark / lr make such pairs)', f'datasets.{phase}')


def check_dataset_keys(phase: str, ds: dict) -> None:
    """The keys the dataset's class and BasicSR's loader index without a default."""
    wanted = DATASET_KEYS.get(str(ds.get('type')), {})
    keys = list(wanted.get('any', ()))
    if phase == 'train':
        keys += list(wanted.get('train', ())) + list(LOADER_KEYS)
    absent = [k for k in keys if ds.get(k) is None]
    if absent:
        hint = f' ({IO_BACKENDS[ds["type"]]})' if 'io_backend' in absent and ds.get('type') in IO_BACKENDS else ''
        raise OptionsError(f"{ds.get('type')} needs {', '.join(absent)}{hint}; add them to the yml",
                           f'datasets.{phase}')
    backend = ds.get('io_backend')
    if 'io_backend' in keys and not (isinstance(backend, dict) and backend.get('type') in ('disk', 'lmdb')):
        raise OptionsError(f'must be a mapping with type: disk or lmdb, not {backend!r}',
                           f'datasets.{phase}.io_backend')


def check_crops(phase: str, ds: dict, scale: int) -> Optional[str]:
    """Training crops fit the images: PairedCropDataset leaves out the images smaller than its crop (with a note) and
    needs a batch of the rest; BasicSR's PairedImageDataset fails mid-run on any. Returns a note or None."""
    gt_size = ds.get('gt_size')
    if phase != 'train' or not isinstance(gt_size, int):
        return None
    sizes = lq_sizes(ds)
    small = [hw for hw in sizes if too_small(hw, gt_size, scale)]
    if not small:
        return None
    lq = gt_size // scale
    if ds.get('type') != 'PairedCropDataset':
        raise OptionsError(f'{len(small)} of its {len(sizes)} LQ images are smaller than the LQ crop {lq} (gt_size '
                           f'{gt_size} / scale {scale}), e.g. {small[0][1]}x{small[0][0]}, which {ds.get("type")} '
                           'cannot crop: lower gt_size or leave those images out', f'datasets.{phase}.gt_size')
    left = len(sizes) - len(small)
    if left * ds.get('dataset_enlarge_ratio', 1) < ds.get('batch_size_per_gpu', 1):
        raise OptionsError(f'{len(small)} of its {len(sizes)} LQ images are smaller than the LQ crop {lq} (gt_size '
                           f'{gt_size} / scale {scale}), and the {left} left do not fill a batch: lower gt_size',
                           f'datasets.{phase}.gt_size')
    return (f'datasets.{phase}: {len(small)} of {len(sizes)} images are smaller than the crop (LQ {lq} px, gt_size '
            f'{gt_size}) and are left out of training; lower gt_size to use them')
