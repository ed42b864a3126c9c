"""``basicsr prepare``: the data scripts PyPI basicsr does not ship, as sub-commands.

    basicsr prepare lr        --hr DIR --out DIR --scale 4           MATLAB-style bicubic LR (mod-crop first)
    basicsr prepare subimages --in DIR --out DIR --crop 960 --step 480 [--thresh 0]
    basicsr prepare lmdb      --gt DIR --lq DIR --gt-lmdb X.lmdb --lq-lmdb Y.lmdb [--format decoded|png]
    basicsr prepare df2k      --hr DIR [DIR ...] --root datasets/DF2K      the whole DF2K pipeline of the schedule
    basicsr prepare benchmark --hr DIR --name Set5 [--root datasets/benchmark] [--scales 4]
    basicsr prepare samples   --out DIR                                 scikit-image's built-in photos as PNG
"""
from __future__ import annotations

import argparse
import os

from . import Parser, _Help, add_command, whole


def add_parser(parent: 'argparse._SubParsersAction') -> argparse.ArgumentParser:
    from ..archs.pfdn.limits import SCALES

    p = add_command(parent, 'prepare', 'make LR images, sub-images, LMDBs, benchmark folders',
                    'Prepare data for BasicSR (progress with ETA; what exists is checked and kept; an interrupted '
                    'run continues when rerun).', on_interrupt='rerun the same command to continue where it stopped')
    p.set_defaults(func=run)
    sub = p.add_subparsers(dest='what', required=True, metavar='<step>', help='the preparation step',
                           parser_class=Parser)

    def step(name, help_):
        return sub.add_parser(name, help=help_, description=help_, formatter_class=_Help)
    s = step('lr', 'LR images by MATLAB-style bicubic')
    s.add_argument('--hr', required=True, help='folder of HR images')
    s.add_argument('--out', required=True, help='folder for the LR images (PNG, same names)')
    s.add_argument('--scale', type=int, choices=SCALES, default=4, help='downscaling factor')
    s = step('subimages', 'overlapping square crops')
    s.add_argument('--in', dest='src', required=True, help='folder of images')
    s.add_argument('--out', required=True, help='folder for the crops (<name>_s001.png, ...)')
    s.add_argument('--crop', type=whole(1), default=960, help='crop side in pixels')
    s.add_argument('--step', type=whole(1), default=480, help='distance between crops')
    s.add_argument('--thresh', type=whole(0), default=0, help='a leftover border wider than this gets one more crop')
    formats = dict(choices=('decoded', 'png'), default='decoded',
                   help='decoded: uint8 pixels for PairedCropDataset (a random crop reads only the crop); png: '
                        "BasicSR's PNG LMDB for PairedImageDataset")
    s = step('lmdb', 'paired GT/LQ LMDBs (decoded for PairedCropDataset, or PNG)')
    s.add_argument('--gt', required=True, nargs='+', help='GT image folder(s)')
    s.add_argument('--lq', required=True, help='LQ image folder (same file names)')
    s.add_argument('--gt-lmdb', required=True, help='GT LMDB to make (ends in .lmdb)')
    s.add_argument('--lq-lmdb', required=True, help='LQ LMDB to make (ends in .lmdb)')
    s.add_argument('--format', **formats)
    s.add_argument('--scale', type=whole(1), default=4, help='GT images are cropped to a multiple of it')
    s = step('df2k', 'HR folders -> x4 LR and the paired training LMDBs of every schedule stage')
    s.add_argument('--hr', nargs='+', required=True, help='DIV2K_train_HR and Flickr2K_HR folders')
    s.add_argument('--root', default='datasets/DF2K', help='output folder')
    s.add_argument('--format', **formats)
    s.add_argument('--crop', type=whole(1), default=960,
                   help='png format only: HR sub-image side (>= 960 for the LR-240 fine-tune)')
    s.add_argument('--step', type=whole(1), default=480, help='png format only: sub-image step')
    s.add_argument('--scale', type=int, choices=SCALES, default=4, help='downscaling factor')
    s.add_argument('--workers', type=whole(1), default=os.cpu_count() or 1,
                   help='processes for the bicubic LR (all CPUs)')
    s = step('benchmark', '<root>/<name>/{HR,LR_bicubic/X<s>} from an HR-only folder')
    s.add_argument('--hr', required=True, help='folder of the HR images')
    s.add_argument('--name', required=True, help='e.g. Set5, Set14, B100, Urban100, Manga109')
    s.add_argument('--root', default='datasets/benchmark', help='where <name>/HR and <name>/LR_bicubic/X<s> go')
    s.add_argument('--scales', type=int, choices=SCALES, nargs='+', default=[4], help='LR scales to make')
    s = step('samples', "scikit-image's built-in photos as PNG (small data for smoke runs)")
    s.add_argument('--out', required=True, help='folder for the photos (PNG)')
    return p


def run(a: argparse.Namespace) -> int:
    from ..data import preparation as prep

    if a.what == 'lr':
        n = prep.make_lr(a.hr, a.out, a.scale)
        print(f'{n} LR images written to {a.out} (existing ones kept)')
    elif a.what == 'subimages':
        skipped = prep.extract_subimages(a.src, a.out, a.crop, a.step, a.thresh)
        print(f'sub-images in {a.out}' + (f'; {skipped} images smaller than {a.crop} skipped' if skipped else ''))
    elif a.what == 'lmdb':
        n = prep.make_paired_lmdb(a.gt, a.lq, a.gt_lmdb, a.lq_lmdb, a.format, a.scale)
        print(f'{a.gt_lmdb} and {a.lq_lmdb}: {n} pairs, identical keys ({a.format})')
    elif a.what == 'df2k':
        gt_lmdb, lq_lmdb = prep.prepare_df2k(a.hr, a.root, a.format, a.scale, a.crop, a.step, a.workers)
        print(f'{gt_lmdb} and {lq_lmdb} ({a.format}): ready')
    elif a.what == 'benchmark':
        out = prep.prepare_benchmark(a.hr, a.name, a.root, tuple(a.scales))
        print(f'{out}: HR and LR_bicubic/X{"/X".join(map(str, a.scales))}')
    elif a.what == 'samples':
        from ..layout.samples import write_samples
        print(f'{len(write_samples(a.out))} sample photos in {a.out}')
    return 0
