"""An architecture's facts in one place, as spandrel's ``Architecture`` and timm's model files keep them.

Every caller (checkpoint loading, spandrel, export, int8, the yml checks, the runners) asks an ``ArchSpec`` rather
than knowing PFDN's keys or sizes itself: how its state dict is told apart (by keys), its constructor arguments (read
off the tensors' shapes), how a checkpoint is made to fit a network of either form, the graph the runtimes export,
the ops int8 keeps in float, the smallest input, and its checks of a training yml. A second architecture would be one
module holding its spec and one entry in ``specs.SPECS``.
"""
from typing import Dict, Mapping, Optional, Tuple, Type

import torch
from torch import nn


class SRNetwork(nn.Module):
    """What every described architecture's network has, beside being a module (its spec's ``network`` is one): the
    channels it takes, its scale, and whether it is in its deployed form. The callers type networks by it."""
    num_in_ch: int
    upscale: int
    deploy: bool


class ArchSpec:
    """What is known about one architecture. Subclasses fill in the names and the methods."""
    name: str = ''  # the registry name, ``network_g.type`` in a yml
    network: Type[SRNetwork] = SRNetwork  # the class built
    min_input: int = 1  # the smallest LR side it runs
    float_ops: Dict[str, Tuple[str, ...]] = {}  # per graph kind ('openvino', 'onnx', 'torch'): ops int8 keeps in float
    ncc_layers: Tuple[str, ...] = ()  # the modules the layer-wise NCC loss compares by default

    def missing_keys(self, state_dict: Mapping[str, torch.Tensor]) -> list:
        """The distinctive keys ``state_dict`` lacks (none: it is this architecture's)."""
        raise NotImplementedError

    def detect(self, state_dict: Mapping[str, torch.Tensor]) -> bool:
        """Whether ``state_dict`` (bare) is this architecture's, by its keys alone."""
        return not self.missing_keys(state_dict)

    def hyperparameters(self, state_dict: Mapping[str, torch.Tensor]) -> dict:
        """Constructor arguments read off the state dict's shapes; CheckpointError when it is not this
        architecture's."""
        raise NotImplementedError

    def deployed(self, state_dict: Mapping[str, torch.Tensor]) -> Optional[bool]:
        """Whether ``state_dict`` is in the deployed form, for an architecture with a training and a deployed form
        (None: one form only)."""
        return None

    def checkpoint_filter(self, state_dict: Mapping[str, torch.Tensor], net: nn.Module) -> Tuple[dict, bool]:
        """(state dict made to fit ``net``, whether it was converted), as timm's ``checkpoint_filter_fn``."""
        return dict(state_dict), False

    def build(self, state_dict: Mapping[str, torch.Tensor], **overrides: object) -> SRNetwork:
        """The network ``state_dict`` describes (``overrides`` replacing constructor arguments), loaded strictly
        after ``checkpoint_filter``."""
        net = self.network(**dict(self.hyperparameters(state_dict), **overrides))
        net.load_state_dict(self.checkpoint_filter(state_dict, net)[0], strict=True)
        return net

    def graph_form(self, net: nn.Module) -> nn.Module:
        """The copy of a deployed ``net`` that exports and runtimes run (same function, same parameters)."""
        return net

    def from_graph_form(self, state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The deployed state dict of a ``graph_form`` network's state dict (its exact inverse)."""
        return dict(state_dict)

    def check_options(self, gt_size: Optional[int], scale: int) -> Optional[str]:
        """Why a training run with HR patches of ``gt_size`` at ``scale`` cannot train this network, or None."""
        return None
