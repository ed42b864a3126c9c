"""PairedCropDataset: random paired training crops that cost next to nothing per sample.

BasicSR's ``PairedImageDataset`` decodes a whole PNG sub-image (960 px in this recipe) for every random crop, which
leaves a GPU waiting for data (the README's training-speed figures). This dataset reads decoded LMDBs
(``basicsr prepare lmdb`` / ``df2k``, see ``lmdb_store``): a crop is sliced out of the memory-mapped pixels, so
only the crop is read and copied. With ``uint8_batches: true`` it leaves the worker as uint8 (4x less to pin and
to copy to the device), for a model that converts batches on the device (``PFDNModel``); by default it is float32
in [0, 1], as every BasicSR model expects.

Same sampling and augmentation as ``PairedImageDataset``, through BasicSR's own ``paired_random_crop`` and
``augment``, in the same order of random draws: from the same images and seed, the same crops, flips and
rotations.
"""
from typing import Tuple
import torch
from torch.utils import data

from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import get_root_logger

from ..errors import DataError
from .lmdb_store import DecodedLMDB


def too_small(lq_hw: Tuple[int, int], gt_size: int, scale: int) -> bool:
    """Whether an LQ image of (h, w) ``lq_hw`` cannot give a training crop of ``gt_size`` / ``scale``."""
    return min(lq_hw) < gt_size // scale


class PairedCropDataset(data.Dataset):
    """Paired LQ/GT crops from decoded LMDBs, as RGB tensors (C x H x W).

    Args:
        opt (dict): BasicSR dataset options:
            dataroot_gt, dataroot_lq (str): decoded LMDBs with the same keys (LQ = GT / scale in size).
            gt_size (int): GT crop side in training (LQ crop = gt_size / scale).
            use_hflip (bool): random horizontal flips. use_rot (bool): random vertical flips and 90-degree turns.
            scale (int): set by BasicSR from the options' ``scale``. phase (str): 'train' crops and augments;
                otherwise whole images are returned.
            uint8_batches (bool): deliver uint8 tensors, which ``PFDNModel`` turns into floats on the device.
                Default: False (float32 in [0, 1], the same values as ``PairedImageDataset``'s).
    """

    def __init__(self, opt: dict):
        super().__init__()
        self.opt = opt
        self.gt = DecodedLMDB(opt['dataroot_gt'])
        self.lq = DecodedLMDB(opt['dataroot_lq'])
        if set(self.gt.shapes) != set(self.lq.shapes):
            only = sorted(set(self.gt.shapes) ^ set(self.lq.shapes))[:3]
            raise DataError(f"holds other keys than {opt['dataroot_lq']} (e.g. {only})", opt['dataroot_gt'])
        self.keys = sorted(self.gt.shapes)
        scale = opt['scale']
        for key in self.keys:
            (h, w, _), (lh, lw, _) = self.gt.shapes[key], self.lq.shapes[key]
            if (h, w) != (lh * scale, lw * scale):
                raise DataError(f'{key}: GT is {h}x{w} but LQ is {lh}x{lw}, not 1/{scale} of it; remake the LQ '
                                'LMDB from the same GT images')
        if opt.get('phase') == 'train':
            small = [k for k in self.keys if too_small(self.lq.shapes[k][:2], opt['gt_size'], scale)]
            if len(small) == len(self.keys):
                raise DataError(f"all {len(small)} LQ images are smaller than the LQ crop {opt['gt_size'] // scale} "
                                f"(gt_size {opt['gt_size']} / scale {scale}): lower gt_size", opt['dataroot_lq'])
            if small:  # the option checks said so before the run started
                get_root_logger().warning(f'{len(small)} images smaller than the crop are left out (e.g. {small[0]})')
                self.keys = [k for k in self.keys if k not in set(small)]

    def __getitem__(self, index):
        key = self.keys[index]
        with self.gt.begin() as gt_txn, self.lq.begin() as lq_txn:
            img_gt, img_lq = self.gt.array(gt_txn, key), self.lq.array(lq_txn, key)
            if self.opt.get('phase') == 'train':
                # views into the memory map: only the crop's pages are read, and only the crop is copied
                img_gt, img_lq = paired_random_crop(img_gt, img_lq, self.opt['gt_size'], self.opt['scale'], key)
            img_gt, img_lq = img_gt.copy(), img_lq.copy()  # out of the map before the transaction ends
        if self.opt.get('phase') == 'train':
            img_gt, img_lq = augment([img_gt, img_lq], self.opt.get('use_hflip', False), self.opt.get('use_rot', False))
        # HWC -> CHW as views; the DataLoader's collate makes the batch contiguous in one copy
        lq, gt = torch.from_numpy(img_lq).permute(2, 0, 1), torch.from_numpy(img_gt).permute(2, 0, 1)
        if not self.opt.get('uint8_batches'):
            lq, gt = lq.float().div_(255), gt.float().div_(255)  # BasicSR's img.astype(np.float32) / 255.
        return {'lq': lq, 'gt': gt, 'lq_path': key, 'gt_path': key}

    def __len__(self):
        return len(self.keys)
