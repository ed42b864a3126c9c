"""PFDN in spandrel: detection and hyperparameters read off a deployed state dict."""

from __future__ import annotations

from typing_extensions import override

from spandrel.__helpers.model_descriptor import (
    Architecture,
    ImageModelDescriptor,
    SizeRequirements,
    StateDict,
)
from spandrel.util import KeyCondition, get_scale_and_output_channels

from .__arch.PFDN import PFDN

# ESA's 3x3 stride-2 convolution then a 7x7 max-pool: a side below 15 leaves the pool nothing
MIN_INPUT_SIZE = 15


def _num_blocks(state_dict: StateDict) -> int:
    num_block = 0
    while f"block{num_block + 1}.conv1.rep_conv.weight" in state_dict:
        num_block += 1
    return num_block


class PFDNArch(Architecture[PFDN]):
    def __init__(self) -> None:
        super().__init__(
            id="PFDN",
            detect=KeyCondition.has_all(
                "conv_first.weight",
                "block1.attn.conv1.weight",
                "block1.attn.conv_f.weight",
                "block1.attn.conv2.weight",
                "block1.attn.conv3.weight",
                "block1.attn.conv4.weight",
                "block1.conv1.rep_conv.weight",
                "block1.conv2.rep_conv.weight",
                "block1.conv3.rep_conv.weight",
                "conv_last.weight",
                "tail.0.weight",
            ),
        )

    @override
    def load(self, state_dict: StateDict) -> ImageModelDescriptor[PFDN]:
        num_feat, num_in_ch = state_dict["conv_first.weight"].shape[:2]
        num_block = _num_blocks(state_dict)
        num_partial_feat = state_dict["block1.conv3.rep_conv.weight"].shape[0]
        esa_channels = state_dict["block1.attn.conv1.weight"].shape[0]
        upscale, num_out_ch = get_scale_and_output_channels(
            state_dict["tail.0.weight"].shape[0], num_in_ch
        )

        model = PFDN(
            num_in_ch=num_in_ch,
            num_out_ch=num_out_ch,
            num_feat=num_feat,
            num_block=num_block,
            num_partial_feat=num_partial_feat,
            esa_channels=esa_channels,
            upscale=upscale,
        )

        return ImageModelDescriptor(
            model,
            state_dict,
            architecture=self,
            purpose="Restoration" if upscale == 1 else "SR",
            tags=[f"{num_feat}nf", f"{num_block}nb"],
            supports_half=True,
            supports_bfloat16=True,
            scale=upscale,
            input_channels=num_in_ch,
            output_channels=num_out_ch,
            size_requirements=SizeRequirements(minimum=MIN_INPUT_SIZE),
        )


__all__ = ["PFDNArch", "PFDN"]
