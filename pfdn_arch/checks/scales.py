"""x2 and x3: the x4 recipe at another scale, as one transformation of an options file.

The recipe is specified by LR patch sizes (stage 1 at LR 64, then 128, 160, 180, the fine-tune at 240), so at
scale ``s`` every stage keeps its LR patch and its HR patch becomes LR x ``s``; the network's ``upscale``, the
metrics' border crop, the LR data paths (``..._X4``, ``.../X4``) and the experiment names (``PFDN_x4_...``) follow.
``options/train_pfdn_x2.yml`` / ``_x3.yml`` and ``options/test_pfdn_x2.yml`` / ``_x3.yml`` are this transformation of
the x4 files (a test keeps them so), and ``basicsr schedule --scale 2|3`` applies it to every stage.
No x2/x3 weights were released: the x2/x3 test ymls score what the schedule at that scale trains.
"""
from __future__ import annotations

import copy

from ..archs.pfdn.limits import SCALES
from ..data.lmdb_store import gt_lmdb_name
from ..errors import OptionsError

FINAL_STAGE = 'PFDN_x{s}_s3_finetune_lr240'  # the schedule's last stage, whose deployed network the test ymls score


def _renamed(text, scale):
    for old, new in (('PFDN_x4_', f'PFDN_x{scale}_'), ('_X4', f'_X{scale}'), ('/X4', f'/X{scale}'),
                     ('_x4_', f'_x{scale}_')):
        text = text.replace(old, new)
    return text


def rescaled(opt: dict, scale: int) -> dict:
    """A copy of x4 options ``opt`` for ``scale`` (see the module's docstring). A test yml that scores the released
    x4 weights scores the deployed network of the schedule's last stage at ``scale`` instead."""
    if scale not in SCALES:
        raise OptionsError(f'must be one of {", ".join(map(str, SCALES))}, got {scale}', 'scale')
    old = opt.get('scale', 4)
    if old != 4:
        raise OptionsError(f'rescaling starts from x4 options; these are x{old}', 'scale')
    opt = copy.deepcopy(opt)
    if scale == 4:
        return opt
    opt['scale'] = scale
    opt['name'] = _renamed(str(opt['name']), scale).replace('_released', '_schedule')
    for key in ('network_g', 'network_t'):
        if isinstance(opt.get(key), dict) and 'upscale' in opt[key]:
            opt[key]['upscale'] = scale
    for ds in (opt.get('datasets') or {}).values():
        if isinstance(ds.get('dataroot_lq'), str):
            ds['dataroot_lq'] = _renamed(ds['dataroot_lq'], scale)
        if isinstance(ds.get('dataroot_gt'), str) and ds.get('type') == 'PairedCropDataset':
            ds['dataroot_gt'] = gt_lmdb_name(ds['dataroot_gt'], scale)
        if isinstance(ds.get('gt_size'), int):
            ds['gt_size'] = ds['gt_size'] // old * scale
    for key, value in (opt.get('path') or {}).items():
        if isinstance(value, str):
            opt['path'][key] = _renamed(value, scale)
    if not opt.get('train') and 'team08_PFDN' in str(opt['path'].get('pretrain_network_g')):
        opt['path']['pretrain_network_g'] = f'experiments/{FINAL_STAGE.format(s=scale)}/models/net_g_deploy_latest.pth'
    for metric in ((opt.get('val') or {}).get('metrics') or {}).values():
        if isinstance(metric, dict) and 'crop_border' in metric:
            metric['crop_border'] = scale
    return opt
