"""The training recipe as a chain of stage ymls (``options/schedule_pfdn_x4.yml``): loading it, what each stage
costs, and the profiles that scale it down to a CPU: smoke (built-in photos, the package's own check) and cpu (the
user's own photos, validated on Set5 where it was prepared).
"""
from __future__ import annotations

import copy
import os
from typing import List, Optional, Sequence, Tuple

from ..data.lmdb_store import gt_lmdb_name
from ..data.preparation import make_lr, make_paired_lmdb, prepare_benchmark, prepare_df2k
from ..errors import OptionsError
from ..layout.locations import DEFAULT_SCHEDULE, option_file
from ..layout.samples import write_samples
from ..models.train_step import AMP_OFF
from ..checks.options import read_yml
from .profiles import OWN_ROOT, PROFILES, SMOKE_BATCH, SMOKE_GT_SIZES, SMOKE_ITERS, SMOKE_ROOT, SMOKE_TRAIN, SMOKE_VAL

SET5 = os.path.join('datasets', 'benchmark', 'Set5', 'HR')


def load_schedule(path: str = DEFAULT_SCHEDULE) -> List[Tuple[str, dict]]:
    """[(stage yml path, its options)] in order."""
    path = option_file(path)
    stages = read_yml(path).get('stages') or []
    if not stages:
        raise OptionsError('lists no stages', path)
    return [(option_file(s), read_yml(option_file(s))) for s in stages]


def stage_work(opt: dict) -> float:
    """Iterations x LR pixels per batch: what a stage costs, for the schedule's ETA."""
    train = opt['datasets']['train']
    return opt['train']['total_iter'] * train['batch_size_per_gpu'] * (train['gt_size'] // opt.get('scale', 4)) ** 2


def make_smoke_data(root: str = SMOKE_ROOT, scale: int = 4) -> Tuple[str, str, str]:
    """Paired decoded LMDBs of the built-in photos (whole images; x``scale`` LR by MATLAB-style bicubic) for
    ``PairedCropDataset``, plus a small validation set. Reuses what exists, so it is made once; every step
    continues an interrupted one."""
    gt_lmdb = os.path.join(root, gt_lmdb_name('train_HR.lmdb', scale))
    lr = os.path.join(root, f'train_LR_X{scale}')
    lq_lmdb = lr + '.lmdb'
    if not (os.path.isdir(gt_lmdb) and os.path.isdir(lq_lmdb)):
        photos = os.path.join(root, 'photos_train')
        write_samples(photos, SMOKE_TRAIN)
        make_lr(photos, lr, scale)
        make_paired_lmdb(photos, lr, gt_lmdb, lq_lmdb, 'decoded', scale)
    return gt_lmdb, lq_lmdb, make_smoke_val(root, scale)


def make_smoke_val(root: str = SMOKE_ROOT, scale: int = 4) -> str:
    """The built-in validation photos in the benchmark layout (``<root>/val/HR``, ``LR_bicubic/X<scale>``)."""
    val = os.path.join(root, 'val')
    if not os.path.isdir(os.path.join(val, 'LR_bicubic', f'X{scale}')):
        write_samples(os.path.join(root, 'photos_val'), SMOKE_VAL)
        prepare_benchmark(os.path.join(root, 'photos_val'), 'val', root=root, scales=(scale,))
    return val


def make_own_data(hr: str, scale: int = 4, root: str = OWN_ROOT) -> Tuple[str, str, str]:
    """Paired decoded LMDBs of the user's photos in ``hr`` (as ``prepare df2k`` makes them, under ``root``), and
    the validation set: Set5 where ``prepare benchmark`` made it at this scale, else the built-in validation photos.
    What exists is checked against the photos and kept, or made again where they changed."""
    gt_lmdb, lq_lmdb = prepare_df2k([hr], root=root, scale=scale, prefix='own')
    set5 = os.path.dirname(SET5)
    if os.path.isdir(os.path.join(set5, 'LR_bicubic', f'X{scale}')):
        return gt_lmdb, lq_lmdb, set5
    return gt_lmdb, lq_lmdb, make_smoke_val(SMOKE_ROOT, scale)


def scaled_stage(opt: dict, name: str, gt_size: int, total: int, batch: int, data: Tuple[str, str, str],
                 path_map: Optional[dict] = None) -> dict:
    """A copy of a stage's options scaled down for the CPU (same structure, losses and hand-offs): new name,
    patch size, iterations (milestones scaled with them), batch, data (decoded LMDBs, read in the main process)
    and validation set (none when ``data[2]`` is None), the GPU step options off (fp32, eager: compiling costs more
    than a short CPU stage runs), TensorBoard off; ``path_map`` rewrites substrings of ``path.*`` (how the previous
    stage's checkpoint is found)."""
    gt_lmdb, lq_lmdb, val = data
    opt = copy.deepcopy(opt)
    opt['name'] = name
    opt['num_gpu'] = 0
    train = opt['datasets']['train']
    train.pop('io_backend', None)
    train.update(type='PairedCropDataset', dataroot_gt=gt_lmdb, dataroot_lq=lq_lmdb, gt_size=gt_size,
                 batch_size_per_gpu=batch, num_worker_per_gpu=0, prefetch_mode=None, pin_memory=False,
                 persistent_workers=False)
    opt['train'].update(amp=AMP_OFF, channels_last=False, compile=False)
    if val is None:  # no validation (benchmarks)
        opt['datasets'].pop('val', None)
        opt.pop('val', None)
    else:
        opt['datasets']['val'].update(name=os.path.basename(val.rstrip('/')), dataroot_gt=os.path.join(val, 'HR'),
                                      dataroot_lq=os.path.join(val, 'LR_bicubic', f"X{opt['scale']}"))
    for key, value in list(opt['path'].items()):
        if isinstance(value, str):
            for old, new in (path_map or {}).items():
                value = value.replace(old, new)
            opt['path'][key] = value
    sched = opt['train']['scheduler']
    full = opt['train']['total_iter']
    sched['milestones'] = [max(1, m * total // full) for m in sched.get('milestones', [])]
    opt['train']['total_iter'] = total
    if 'val' in opt:
        opt['val']['val_freq'] = max(1, total // 4)  # four points per stage on the schedule's PSNR plot
        opt['val']['backend'] = 'torch'  # small images, short runs: an OpenVINO model per validation costs more
    # no TensorBoard: a short CPU stage would spend more on starting it than on training (the schedule draws its own
    # PSNR plot from each stage's validation.json)
    opt['logger'].update(print_freq=max(1, total // 4), save_checkpoint_freq=max(1, total // 2), use_tb_logger=False)
    return opt


def smoke_stage(opt: dict, index: int, names: Sequence[str], data: Tuple[str, str, str],
                iters: Sequence[int] = SMOKE_ITERS, prefix: str = PROFILES['smoke']) -> dict:
    """A real stage scaled to the smoke profile (or the cpu profile: ``CPU_ITERS``, ``prefix`` cpu_); the chain's
    paths point at the profile's experiments."""
    gt_size = SMOKE_GT_SIZES[index] // 4 * opt['scale']  # the same LR patches at every scale
    return scaled_stage(opt, prefix + opt['name'], gt_size, iters[index], SMOKE_BATCH[index], data,
                        {f'experiments/{n}/': f'experiments/{prefix}{n}/' for n in names})
