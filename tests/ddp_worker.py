"""Entry point for the DDP test: `basicsr train` where every rank also saves its own weights when BasicSR saves,
so the test can check that the ranks agree."""
import os
import sys

import torch

import pfdn_arch  # noqa: F401
from pfdn_arch.cli.main import main
from pfdn_arch.models import PFDNModel

_save = PFDNModel.save


def save_with_rank_copy(self, epoch, current_iter):
    _save(self, epoch, current_iter)
    rank = torch.distributed.get_rank()
    sd = self.get_bare_model(self.net_g).state_dict()
    torch.save(sd, os.path.join(self.opt['path']['models'], f'rank{rank}_{current_iter}.pth'))


if __name__ == '__main__':  # spawned DataLoader workers import this file too
    PFDNModel.save = save_with_rank_copy
    sys.exit(main(['train'] + sys.argv[1:]))
