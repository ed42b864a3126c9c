"""PFDN (Partial Feature Distillation Network), deployed form: the released network with each re-parameterizable
3x3 convolution already fused into one plain convolution (``rep_conv``). The state dict has exactly the key layout
of the authors' ``team08_PFDN.pth``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spandrel.util import store_hyperparameters


class ESA(nn.Module):
    """Enhanced spatial attention: a coarse map from a strided, pooled branch gates the input."""

    def __init__(self, num_feat: int, esa_channels: int) -> None:
        super().__init__()
        f = esa_channels
        self.conv1 = nn.Conv2d(num_feat, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, num_feat, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1(x)
        b = F.max_pool2d(self.conv2(a), kernel_size=7, stride=3)
        b = self.conv3(b)
        b = F.interpolate(b, size=x.shape[-2:], mode="bilinear", align_corners=False)
        m = self.conv4(b + self.conv_f(a)).sigmoid()
        return x * m


class RepConv(nn.Module):
    """A re-parameterized 3x3 convolution (the training form's branches fused)."""

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.rep_conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rep_conv(x)


class PFDB(nn.Module):
    """Partial feature distillation block: ESA, 3x3 conv, a 3x3 conv on the first
    ``num_partial_feat`` channels only (the rest pass through), 3x3 conv, residual."""

    def __init__(self, num_feat: int, num_partial_feat: int, esa_channels: int) -> None:
        super().__init__()
        self.num_partial_feat = num_partial_feat
        self.attn = ESA(num_feat, esa_channels)
        self.conv1 = RepConv(num_feat)
        self.conv2 = RepConv(num_feat)
        self.conv3 = RepConv(num_partial_feat)
        self.act = nn.LeakyReLU(0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn(x)
        res = x
        x = self.act(self.conv1(x))
        p = self.num_partial_feat
        x = torch.cat([self.act(self.conv3(x[:, :p])), x[:, p:]], dim=1)
        x = self.act(self.conv2(x))
        return x + res


@store_hyperparameters()
class PFDN(nn.Module):
    """PFDN super-resolution network (NTIRE 2023 Efficient SR). The defaults build the
    released x4 model. Input is RGB in [0, 1]; the network has no mean shift and no clamp.

    Args:
        num_in_ch: Input channels.
        num_out_ch: Output channels.
        num_feat: Feature channels.
        num_block: Number of blocks (``block1`` ... ``blockN``).
        num_partial_feat: Channels the partial convolution of each block sees.
        esa_channels: Width of the attention branch.
        upscale: Upsampling factor (the tail's pixel shuffle).
    """

    hyperparameters: dict = {}

    def __init__(
        self,
        *,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 48,
        num_block: int = 4,
        num_partial_feat: int = 32,
        esa_channels: int = 16,
        upscale: int = 4,
    ) -> None:
        super().__init__()
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.num_block = num_block
        self.upscale = upscale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        # block1 ... blockN as attributes (not a list) keep the released key names
        for i in range(1, num_block + 1):
            self.add_module(f"block{i}", PFDB(num_feat, num_partial_feat, esa_channels))
        self.conv_last = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.tail = nn.Sequential(
            nn.Conv2d(num_feat, num_out_ch * upscale**2, 3, 1, 1),
            nn.PixelShuffle(upscale),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f0 = self.conv_first(x)
        f = f0
        for i in range(1, self.num_block + 1):
            f = getattr(self, f"block{i}")(f)
        return self.tail(self.conv_last(f) + f0)
