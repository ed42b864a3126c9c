"""PFDN: Partial Feature Distillation Network (NTIRE 2023 Efficient SR, overall winner).

One class serves both forms: ``deploy=False`` builds the training form, whose ``conv1``/``conv2``/``conv3`` in
every block are :class:`~pfdn_arch.archs.pfdn.rrrb.RRRB`; ``deploy=True`` builds the released plain form, whose state
dict has exactly the key layout of the authors' ``team08_PFDN.pth``. ``reparameterize()`` turns the first into
the second in place; checkpoints are converted by explicit functions (``convert.checkpoint_filter``), never by
an overridden ``load_state_dict``.
"""
from typing import List
import torch
from torch import nn

from ..spec import SRNetwork
from .esa import ESA
from .limits import SCALES, check_lr_input
from .rrrb import RRRB


class PFDB(nn.Module):
    """Partial feature distillation block: ESA, 3x3 conv, a 3x3 conv on the first ``num_partial_feat`` channels
    only (the rest pass through), 3x3 conv, residual.

    Args:
        num_feat (int): Channels. Default: 48.
        num_partial_feat (int): Channels the partial conv sees. Default: 32.
        esa_channels (int): ESA width. Default: 16.
        rrrb_expand_ratio (int): RRRB inner width as a multiple of its channels. Default: 2.
        rrrb_mode (str): 'online' or 'explicit' computation of the training form. Default: 'online'.
        deploy (bool): Plain convs instead of RRRBs. Default: False.
    """

    def __init__(self, num_feat: int = 48, num_partial_feat: int = 32, esa_channels: int = 16,
                 rrrb_expand_ratio: int = 2, rrrb_mode: str = 'online', deploy: bool = False):
        super().__init__()
        self.num_partial_feat = num_partial_feat
        self.attn = ESA(num_feat, esa_channels)
        self.conv1 = RRRB(num_feat, rrrb_expand_ratio, rrrb_mode, deploy)
        self.conv2 = RRRB(num_feat, rrrb_expand_ratio, rrrb_mode, deploy)
        self.conv3 = RRRB(num_partial_feat, rrrb_expand_ratio, rrrb_mode, deploy)
        self.act = nn.LeakyReLU(0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn(x)
        res = x
        x = self.act(self.conv1(x))
        # The released forward writes x[:, :p] in place, which autograd cannot differentiate; concatenate instead.
        p = self.num_partial_feat
        x = torch.cat([self.act(self.conv3(x[:, :p])), x[:, p:]], dim=1)
        x = self.act(self.conv2(x))
        return x + res


class PFDN(SRNetwork):
    """PFDN super-resolution network. The defaults build the released x4 model (deployed form with ``deploy=True``).

    Input is RGB in [0, 1]; there is no mean shift and no clamp inside the network.

    Args:
        num_in_ch (int): Input channels. Default: 3.
        num_out_ch (int): Output channels. Default: 3.
        num_feat (int): Feature channels. Default: 48.
        num_block (int): Number of PFDB blocks (``block1`` ... ``blockN``). Default: 4.
        num_partial_feat (int): Channels of the partial conv in each block. Default: 32.
        esa_channels (int): ESA width. Default: 16.
        upscale (int): Upsampling factor: 2, 3 or 4. Default: 4.
        rrrb_expand_ratio (int): RRRB inner width ratio (training form only). Default: 2.
        rrrb_mode (str): 'online' (one recomposed conv per RRRB, fast) or 'explicit' (branch by branch).
            Default: 'online'.
        deploy (bool): False: training form with RRRB convs; True: the released plain form. Default: False.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 48, num_block: int = 4,
                 num_partial_feat: int = 32, esa_channels: int = 16, upscale: int = 4, rrrb_expand_ratio: int = 2,
                 rrrb_mode: str = 'online', deploy: bool = False):
        super().__init__()
        if upscale not in SCALES:
            raise ValueError(f"PFDN upscale must be one of {', '.join(map(str, SCALES))}, got {upscale}")
        if not 0 < num_partial_feat <= num_feat:
            raise ValueError(f'num_partial_feat must be in 1..num_feat ({num_feat}), got {num_partial_feat}')
        self.num_in_ch = num_in_ch
        self.num_block = num_block
        self.upscale = upscale
        self.deploy = deploy
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        # block1..blockN as attributes (not a ModuleList) to keep the released key names.
        for i in range(1, num_block + 1):
            self.add_module(f'block{i}', PFDB(num_feat, num_partial_feat, esa_channels, rrrb_expand_ratio, rrrb_mode,
                                              deploy))
        self.conv_last = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.tail = nn.Sequential(nn.Conv2d(num_feat, num_out_ch * upscale**2, 3, 1, 1), nn.PixelShuffle(upscale))

    @property
    def blocks(self) -> List['PFDB']:
        return [getattr(self, f'block{i}') for i in range(1, self.num_block + 1)]

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError with the reason when ``x`` cannot be run (wrong rank, channels or too small)."""
        check_lr_input(x.shape, self.num_in_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            self.check_input(x)
        f0 = self.conv_first(x)
        f = f0
        for block in self.blocks:
            f = block(f)
        return self.tail(self.conv_last(f) + f0)

    def reparameterize(self) -> 'PFDN':
        """Convert the training form into the deployed form in place (exact; no-op if already deployed)."""
        for module in self.modules():
            if isinstance(module, RRRB):
                module.reparameterize()
        self.deploy = True
        return self
