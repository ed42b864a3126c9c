"""Layer-wise normalized cross-correlation loss (docs/method.md, section 3: our reconstruction of the factsheet). Needs
only torch; BasicSR's loss registry gets it from the hook-up (``plugin/registry.py``)."""
from typing import Sequence, Union
import torch
from torch import nn

_REDUCTIONS = ('none', 'mean', 'sum')


def ncc_distance(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """1 - NCC per sample and channel of two N x C x H x W maps, over the spatial positions. Shape N x C.

    0 when ``b`` is a positive affine copy of ``a``, 2 when negated, 1 when either is constant.
    """
    if a.shape != b.shape:
        raise ValueError(f'NCCLoss: shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}')
    if a.dim() < 3:
        raise ValueError(f'NCCLoss expects N x C x H x W maps, got shape {tuple(a.shape)}')
    # in float32 at least: under autocast the tapped features are bf16/fp16, too coarse for sums of squares
    a = a.flatten(2).to(torch.promote_types(a.dtype, torch.float32))
    b = b.flatten(2).to(a.dtype)
    da = a - a.mean(dim=-1, keepdim=True)
    db = b - b.mean(dim=-1, keepdim=True)
    # Clamp before the square root: a constant map has a zero sum of squares, where sqrt's derivative is infinite
    # and would turn the (zero) gradient into NaN. Above the clamp the value is exactly the definition's.
    tiny = torch.finfo(a.dtype).tiny
    na = (da * da).sum(-1).clamp_min(tiny).sqrt()
    nb = (db * db).sum(-1).clamp_min(tiny).sqrt()
    return 1 - (da * db).sum(-1) / (na * nb + eps)


class NCCLoss(nn.Module):
    """Normalized cross-correlation loss, for one feature map or a list of layers (mean over the layers).

    Args:
        loss_weight (float): Multiplier of the loss. Default: 1.0.
        reduction (str): 'mean' or 'sum' over samples and channels, or 'none' (an N x C map). Default: 'mean'.
        eps (float): Added to the denominator. Default: 1e-8.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean', eps: float = 1e-8):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f'NCCLoss reduction must be one of {_REDUCTIONS}, got {reduction}')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.eps = eps

    def forward(self, pred: Union[torch.Tensor, Sequence[torch.Tensor]],
                target: Union[torch.Tensor, Sequence[torch.Tensor]]) -> torch.Tensor:
        preds = [pred] if isinstance(pred, torch.Tensor) else list(pred)
        targets = [target] if isinstance(target, torch.Tensor) else list(target)
        if len(preds) != len(targets) or not preds:
            raise ValueError(f'NCCLoss needs as many target layers as predicted ones (got {len(preds)} and '
                             f'{len(targets)})')
        per_layer = []
        for p, t in zip(preds, targets):
            d = ncc_distance(p, t, self.eps)
            per_layer.append(d if self.reduction == 'none' else d.mean() if self.reduction == 'mean' else d.sum())
        return self.loss_weight * torch.stack(per_layer).mean(0)
