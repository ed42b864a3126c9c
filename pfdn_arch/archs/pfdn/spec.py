"""PFDN's facts (``spec.ArchSpec``): its keys, its hyperparameters read off shapes (spandrel's habit), the
checkpoint filter of its two forms, its export graph, the ops int8 keeps in float, its smallest input and its yml
check."""
import re
from typing import Dict, Mapping, Optional, Tuple

import torch
from torch import nn

from ...errors import CheckpointError
from .convert import checkpoint_filter, is_training_form, unwrap_state_dict
from .limits import MIN_INPUT_SIZE, SCALES
from .pfdn_arch import PFDN
from .graph import graph_form, joined_state_dict
from ..spec import ArchSpec

# keys every PFDN has in either form (the ESA's conv_f and conv4 inside block1 are what other SR nets lack), and the
# keys that tell its forms apart
KEYS = ('conv_first.weight', 'conv_last.weight', 'tail.0.weight', 'block1.attn.conv1.weight',
        'block1.attn.conv_f.weight', 'block1.attn.conv4.weight')
TRAINING_KEYS = ('block1.conv1.expand_conv.weight', 'block1.conv3.expand_conv.weight')
DEPLOYED_KEYS = ('block1.conv3.rep_conv.weight',)


class PFDNSpec(ArchSpec):
    name = 'PFDN'
    network = PFDN
    min_input = MIN_INPUT_SIZE
    # int8 keeps the attention's gating multiply and the residual additions in float (docs/int8.md), named as each
    # graph names them
    float_ops = {'openvino': ('Multiply', 'Add'), 'onnx': ('Mul', 'Add'),
                 'torch': ('mul', '__mul__', 'add', '__add__', '__iadd__', '__radd__')}
    ncc_layers = ('block1', 'block2', 'block3', 'block4')  # the four blocks' outputs (docs/method.md)

    def missing_keys(self, state_dict: Mapping[str, torch.Tensor]) -> list:
        form = TRAINING_KEYS if is_training_form(state_dict) else DEPLOYED_KEYS
        return [k for k in KEYS[:4] + form + KEYS[4:] if k not in state_dict]

    def hyperparameters(self, state_dict: Mapping[str, torch.Tensor]) -> dict:
        """PFDN constructor arguments read off a state dict of either form (bare or BasicSR's wrapper)."""
        sd = unwrap_state_dict(state_dict)
        missing = self.missing_keys(sd)
        if missing:
            raise CheckpointError(f"not a PFDN state dict: missing {', '.join(missing)}")
        training = is_training_form(sd)
        if any(sd[k].dim() != 4 for k in KEYS + (TRAINING_KEYS if training else DEPLOYED_KEYS)):
            raise CheckpointError('not a PFDN state dict: its convolution weights are not 4-dimensional')
        num_feat, num_in_ch = sd['conv_first.weight'].shape[:2]
        num_block = max(int(m.group(1)) for k in sd for m in [re.match(r'block(\d+)\.', k)] if m)
        tail_out = sd['tail.0.weight'].shape[0]
        upscale = next((s for s in sorted(SCALES, reverse=True) if tail_out % (s * s) == 0 and tail_out // (s * s) == num_in_ch), None)
        if upscale is None:
            raise CheckpointError(f'cannot infer the upscale from tail.0.weight with {tail_out} outputs')
        if training:
            num_partial_feat = sd['block1.conv3.expand_conv.weight'].shape[1]
            expand_ratio = sd['block1.conv1.expand_conv.weight'].shape[0] // num_feat
        else:
            num_partial_feat = sd['block1.conv3.rep_conv.weight'].shape[0]
            expand_ratio = 2
        return dict(num_in_ch=int(num_in_ch), num_out_ch=int(tail_out // upscale**2), num_feat=int(num_feat),
                    num_block=num_block, num_partial_feat=int(num_partial_feat),
                    esa_channels=int(sd['block1.attn.conv1.weight'].shape[0]), upscale=upscale,
                    rrrb_expand_ratio=int(expand_ratio), deploy=not training)

    def deployed(self, state_dict: Mapping[str, torch.Tensor]) -> Optional[bool]:
        return not is_training_form(state_dict)

    def checkpoint_filter(self, state_dict: Mapping[str, torch.Tensor], net: nn.Module) -> Tuple[dict, bool]:
        """A training-form state dict fused exactly for a deployed ``net``; a deployed one refused by a
        training-form ``net`` (``convert.checkpoint_filter``)."""
        return checkpoint_filter(state_dict, net)

    def graph_form(self, net: nn.Module) -> nn.Module:
        if not isinstance(net, PFDN):
            raise TypeError(f'PFDN\'s graph form is of a PFDN, not a {type(net).__name__}')
        return graph_form(net)

    def from_graph_form(self, state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        return joined_state_dict(state_dict)

    def check_options(self, gt_size: Optional[int], scale: int) -> Optional[str]:
        if gt_size is not None and gt_size // scale < self.min_input:
            return (f"{gt_size} makes LR patches of {gt_size // scale} pixels, smaller than PFDN's smallest input "
                    f'({self.min_input}): use at least {self.min_input * scale}')
        return None


PFDN_SPEC = PFDNSpec()


def infer_pfdn_options(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """PFDN constructor arguments read off a state dict of either form; CheckpointError when it is not a PFDN's."""
    return PFDN_SPEC.hyperparameters(state_dict)
