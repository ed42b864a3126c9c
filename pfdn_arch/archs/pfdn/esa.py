"""ESA: enhanced spatial attention as used by RLFN and PFDN (mid width 16)."""
import torch
from torch import nn
from torch.nn import functional as F


class ESA(nn.Module):
    """Enhanced spatial attention: a coarse attention map from a strided, pooled branch gates the input.

    Args:
        num_feat (int): Channels of the gated features. Default: 48.
        esa_channels (int): Width of the attention branch. Default: 16.
    """

    def __init__(self, num_feat: int = 48, esa_channels: int = 16):
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
        b = F.interpolate(b, size=x.shape[-2:], mode='bilinear', align_corners=False)
        m = self.conv4(b + self.conv_f(a)).sigmoid()
        return x * m
