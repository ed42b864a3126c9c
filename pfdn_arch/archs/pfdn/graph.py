"""The deployed PFDN as the runtimes run it fastest (what ONNX, OpenVINO, int8 and QAT export): the same function
without the partial conv's channel split and concatenation (``bench/bench_infer.py`` measures the difference)."""
import copy
from typing import TYPE_CHECKING, Dict, Mapping, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:  # the network this rewrites (its module imports this one's spec)
    from .pfdn_arch import PFDB, PFDN


class SplitPFDB(nn.Module):
    """A deployed PFDB with conv1 as two convs (the channels conv3 sees, the ones that pass through) and conv2 as
    the sum of two convs over those halves, an add the runtimes fuse into the conv: no copy of the features per
    block.

    Args:
        block (PFDB): the deployed block whose parameters it takes (copied, detached).
    """

    def __init__(self, block: 'PFDB'):
        super().__init__()
        p = block.num_partial_feat
        self.attn = block.attn
        w1, b1 = _weight_and_bias(block.conv1.rep_conv)
        w2, b2 = _weight_and_bias(block.conv2.rep_conv)
        self.conv1_partial, self.conv1_rest = _conv(w1[:p], b1[:p]), _conv(w1[p:], b1[p:])
        self.conv3 = block.conv3.rep_conv
        self.conv2_partial, self.conv2_rest = _conv(w2[:, :p], b2), _conv(w2[:, p:], None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn(x)
        head = F.leaky_relu(self.conv3(F.leaky_relu(self.conv1_partial(x), 0.05)), 0.05)
        rest = F.leaky_relu(self.conv1_rest(x), 0.05)
        return F.leaky_relu(self.conv2_partial(head) + self.conv2_rest(rest), 0.05) + x


def _weight_and_bias(conv: nn.Conv2d) -> Tuple[torch.Tensor, torch.Tensor]:
    """A conv's weight and bias, detached (zeros for a conv without one)."""
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels, dtype=conv.weight.dtype)
    return conv.weight.detach(), bias.detach()


def _conv(weight: torch.Tensor, bias: Optional[torch.Tensor]) -> nn.Conv2d:
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[-1], padding=weight.shape[-1] // 2,
                     bias=bias is not None)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None and conv.bias is not None:
            conv.bias.copy_(bias)
    return conv


def graph_form(net: 'PFDN') -> 'PFDN':
    """A copy of a deployed PFDN whose blocks are :class:`SplitPFDB` (same function, same parameters)."""
    graph = copy.deepcopy(net).eval()
    for block in list(graph.blocks):
        name = next(n for n, m in graph.named_children() if m is block)
        setattr(graph, name, SplitPFDB(block))
    return graph


def joined_state_dict(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The deployed (released-layout) state dict of a graph-form PFDN's: each :class:`SplitPFDB`'s split
    convolutions joined back, exactly (the inverse of ``graph_form``)."""
    sd = dict(state_dict)
    blocks = {k.split('.')[0] for k in sd if '.conv1_partial.' in k}
    out = {k: v for k, v in sd.items()
           if k.split('.')[0] not in blocks or not k.partition('.')[2].startswith(('conv1_', 'conv2_', 'conv3.'))}
    for b in sorted(blocks):
        out[f'{b}.conv1.rep_conv.weight'] = torch.cat([sd[f'{b}.conv1_partial.weight'], sd[f'{b}.conv1_rest.weight']])
        out[f'{b}.conv1.rep_conv.bias'] = torch.cat([sd[f'{b}.conv1_partial.bias'], sd[f'{b}.conv1_rest.bias']])
        out[f'{b}.conv2.rep_conv.weight'] = torch.cat([sd[f'{b}.conv2_partial.weight'], sd[f'{b}.conv2_rest.weight']],
                                                      dim=1)
        out[f'{b}.conv2.rep_conv.bias'] = sd[f'{b}.conv2_partial.bias']
        out[f'{b}.conv3.rep_conv.weight'] = sd[f'{b}.conv3.weight']
        out[f'{b}.conv3.rep_conv.bias'] = sd[f'{b}.conv3.bias']
    return out
