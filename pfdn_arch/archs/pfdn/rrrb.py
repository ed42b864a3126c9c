"""RRRB: the re-parameterizable residual-in-residual block of FMEN (Du et al., CVPRW 2022).

While training, a 3x3 conv of C channels is replaced by

    y   = expand(x)                 1x1, C -> M (M = ratio * C), bias b0
    yp  = pad(y, 1) with the border filled with b0 per channel
    z   = fea(yp) + y               3x3, M -> M, no padding, inner identity
    out = reduce(z) + x             1x1, M -> C, outer identity

Padding with b0 instead of zeros makes the whole block equal, borders included, to one zero-padded 3x3 conv whose
kernel :func:`fuse_rrrb` computes. Because that kernel is a differentiable function of the branch weights, the
training form can run either branch by branch (``mode='explicit'``) or as a single conv whose kernel is recomposed
on every forward (``mode='online'``, online re-parameterization as in OREPA, CVPR 2022): same function, same
gradients, without the wide inner activations of the branches.
"""
from typing import Optional, Tuple
import torch
from torch import nn
from torch.nn import functional as F


def fuse_rrrb(w0: torch.Tensor, b0: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
              b2: torch.Tensor, identities: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Compose an RRRB's branches into one 3x3 kernel and bias (differentiable; exact in real arithmetic).

    Written as few kernels as it can be, because online re-parameterization runs it on every training step
    (twelve times per PFDN forward, and again in backward): one add, one matmul, one addmm that also adds the
    outer identity, one sum and two addmv; nothing is index-written. With NHWC (channels_last) weights the two
    matmuls need no layout copies and the kernel is NHWC too.

    Args:
        w0, b0: expand 1x1 conv, shapes (M, C, 1, 1) and (M,).
        w1, b1: fea 3x3 conv, shapes (M, M, 3, 3) and (M,).
        w2, b2: reduce 1x1 conv, shapes (C, M, 1, 1) and (C,).
        identities: optional ``(centre_identity(M), centre_identity(C))`` made once by the caller (RRRB keeps them
            as buffers); built here when None.

    Returns:
        (weight, bias) of shapes (C, C, 3, 3) and (C,) for a conv with padding 1.
    """
    mid, c = w0.shape[:2]
    inner, outer = identities if identities is not None else (centre_identity(mid, w1), centre_identity(c, w1))
    # 1. inner identity: z = fea(yp) + y, and y sits at the centre tap of yp.
    w1 = w1 + inner
    if _nhwc(w1):
        # NHWC weights (training in channels_last): W1 is stored as (m, tap, n), so both compositions are plain
        # matmuls without a copy, and the kernel comes out in NHWC, the layout its conv runs in.
        q = torch.mm(w1.permute(0, 2, 3, 1).reshape(mid * 9, mid), w0.reshape(mid, c))  # Q[(m, t), i]
        weight = torch.addmm(outer.permute(0, 2, 3, 1).reshape(c, 9 * c), w2.reshape(c, mid), q.view(mid, 9 * c))
        weight = weight.view(c, 3, 3, c).permute(0, 3, 1, 2)
    else:
        # 2. compose with the 1x1 expand, per tap t: Q[m, i, t] = sum_n W1'[m, n, t] W0[n, i].
        q = torch.matmul(w0.reshape(mid, c).t(), w1.reshape(mid, mid, 9))
        # 3. compose with the 1x1 reduce and add the outer identity in the same addmm: K = I + W2 Q.
        weight = torch.addmm(outer.reshape(c, c * 9), w2.reshape(c, mid), q.reshape(mid, c * 9)).view(c, c, 3, 3)
    # biases: the b0-filled border means b0 reaches every tap of the kernel.
    b01 = torch.addmv(b1, w1.sum((2, 3)), b0)
    bias = torch.addmv(b2, w2.reshape(c, mid), b01)
    return weight, bias


def _nhwc(w):
    return w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()


def centre_identity(channels: int, like: Optional[torch.Tensor] = None) -> torch.Tensor:
    """A (channels, channels, 3, 3) kernel that copies each input channel to its output (a centre-tap delta)."""
    eye = torch.eye(channels, dtype=None if like is None else like.dtype, device=None if like is None else like.device)
    return torch.nn.functional.pad(eye[:, :, None, None], (1, 1, 1, 1))


class RRRB(nn.Module):
    """A 3x3 conv (C -> C, padding 1) in its re-parameterizable training form or its deployed form.

    Args:
        num_feat (int): Channel number C (input = output).
        expand_ratio (int): Width of the inner branch as a multiple of C. Default: 2.
        mode (str): Training-form computation: 'online' (one conv, kernel recomposed each forward; default) or
            'explicit' (expand, bias-padded 3x3, reduce, branch by branch).
        deploy (bool): Build the deployed form (a single ``rep_conv``) directly. Default: False.
    """

    MODES = ('online', 'explicit')
    # the parts of either form (``deploy``), made in ``__init__`` and ``reparameterize``
    rep_conv: nn.Conv2d
    expand_conv: nn.Conv2d
    fea_conv: nn.Conv2d
    reduce_conv: nn.Conv2d
    inner_identity: torch.Tensor
    outer_identity: torch.Tensor

    def __init__(self, num_feat: int, expand_ratio: int = 2, mode: str = 'online', deploy: bool = False):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"RRRB mode must be one of {self.MODES}, got '{mode}'")
        self.num_feat = num_feat
        self.mode = mode
        self.deploy = deploy
        if deploy:
            self.rep_conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        else:
            mid = num_feat * expand_ratio
            self.expand_conv = nn.Conv2d(num_feat, mid, 1)
            self.fea_conv = nn.Conv2d(mid, mid, 3)
            self.reduce_conv = nn.Conv2d(mid, num_feat, 1)
            # constants of the online recomposition, made once (not per step); not part of the state dict
            self.register_buffer('inner_identity', centre_identity(mid), persistent=False)
            self.register_buffer('outer_identity', centre_identity(num_feat), persistent=False)

    def fused_kernel(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the equivalent 3x3 conv, differentiable w.r.t. the branch parameters.

        Computed in the parameters' dtype even under autocast: casting every small factor to bf16/fp16 costs more
        kernels than it saves and loses precision; the conv that uses the kernel runs in the autocast dtype."""
        with torch.autocast(self.fea_conv.weight.device.type, enabled=False):
            w0, b0, w1, b1, w2, b2 = self._branches()
            return fuse_rrrb(w0, b0, w1, b1, w2, b2, (self.inner_identity, self.outer_identity))

    def _branches(self) -> Tuple[torch.Tensor, ...]:
        """The branches' weights and biases in ``fuse_rrrb``'s order (every conv here has a bias)."""
        convs = (self.expand_conv, self.fea_conv, self.reduce_conv)
        return tuple(t for conv in convs for t in (conv.weight, conv.bias) if t is not None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            return self.rep_conv(x)
        if self.mode == 'online':
            weight, bias = self.fused_kernel()
            return F.conv2d(x, weight, bias, padding=1)
        return self._forward_explicit(x)

    def _forward_explicit(self, x):
        y = self.expand_conv(x)
        b0 = self.expand_conv.bias.view(1, -1, 1, 1)
        yp = F.pad(y - b0, (1, 1, 1, 1)) + b0  # border filled with b0, not zeros
        z = self.fea_conv(yp) + y
        return self.reduce_conv(z) + x

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fuse the branches into ``rep_conv`` in place (computed in float64, stored in the branch dtype)."""
        if self.deploy:
            return
        dtype = self.fea_conv.weight.dtype
        w0, b0, w1, b1, w2, b2 = (p.detach().double() for p in self._branches())
        weight, bias = fuse_rrrb(w0, b0, w1, b1, w2, b2)
        rep_conv = nn.Conv2d(self.num_feat, self.num_feat, 3, 1, 1).to(self.fea_conv.weight.device, dtype)
        rep_conv.weight.copy_(weight)
        if rep_conv.bias is not None:  # made with one
            rep_conv.bias.copy_(bias)
        self.rep_conv = rep_conv
        del self.expand_conv, self.fea_conv, self.reduce_conv, self.inner_identity, self.outer_identity
        self.deploy = True

    def extra_repr(self) -> str:
        return f'num_feat={self.num_feat}, deploy={self.deploy}' + ('' if self.deploy else f', mode={self.mode}')
