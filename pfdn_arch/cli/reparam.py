"""``basicsr reparam``: training-form checkpoint -> deployed checkpoint in the released layout."""
from __future__ import annotations

import argparse
import os

from ..errors import CheckpointError, OptionsError, OutputExists
from . import add_command


def add_parser(sub: 'argparse._SubParsersAction') -> argparse.ArgumentParser:
    p = add_command(sub, 'reparam', 'convert a training-form checkpoint to the deployed form',
                    "Fuse every RRRB of a training-form PFDN checkpoint (bare, or BasicSR's params/params_ema) into a "
                    'deployed state dict with the released key layout (exact; computed in float64).')
    p.add_argument('--in', dest='src', required=True, help='training-form checkpoint (.pth)')
    p.add_argument('--out', dest='dst', required=True, help='deployed checkpoint to write (.pth)')
    p.add_argument('--param-key', default=None, help='params or params_ema (None: params_ema if present)')
    p.add_argument('--force', action='store_true', help='overwrite --out if it exists')
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..archs import PFDN_SPEC
    from ..archs.pfdn.convert import is_training_form, reparameterize_state_dict
    from ..files.atomic import save_torch
    from ..files.checkpoints import load_checkpoint, load_into
    from ..files.paths import output_file

    if os.path.isdir(args.dst):
        raise OptionsError(f'{args.dst} is a folder; give the file to write (e.g. {args.dst}/pfdn_deploy.pth)', 'dst')
    if os.path.exists(args.dst) and os.path.exists(args.src) and os.path.samefile(args.src, args.dst):
        raise OptionsError(f'{args.dst} is --in itself; writing it would replace the training-form checkpoint', 'dst')
    if os.path.exists(args.dst) and not args.force:
        raise OutputExists(args.dst)
    output_file(args.dst)
    sd = load_checkpoint(args.src, args.param_key)
    try:
        options = PFDN_SPEC.hyperparameters(sd)  # a PFDN at all, before asking which form
    except CheckpointError as err:
        err.path = args.src
        raise
    if not is_training_form(sd):
        raise CheckpointError('already in the deployed form (no RRRB branches); nothing to convert', args.src)
    try:
        deployed = reparameterize_state_dict(sd)
        # the result is a whole deployed PFDN
        load_into(PFDN_SPEC.network(**dict(options, deploy=True)), deployed, args.src)
    except CheckpointError as err:
        err.path = args.src
        raise
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    save_torch(deployed, args.dst)
    n = sum(v.numel() for v in deployed.values())
    print(f'wrote {args.dst}: {len(deployed)} tensors, {n:,} parameters (deployed form)')
    return 0
