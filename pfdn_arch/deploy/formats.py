"""Deployed PFDN weights for other tools: .pth (released layout), .safetensors, ONNX (dynamic H and W)."""
import copy
import os
import warnings

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import require
from ..files.atomic import atomic_path, save_torch


def save_pth(state_dict, path):
    save_torch({k: v.contiguous() for k, v in state_dict.items()}, path)


def save_safetensors(state_dict, path, metadata=None):
    save_file = require('safetensors.torch', 'writing .safetensors', 'export', 'safetensors').save_file
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in state_dict.items()}, tmp, metadata=metadata or {})


class SplitPFDB(nn.Module):
    """A deployed PFDB as ONNX runtimes run it fastest: the same function without the partial conv's channel
    split and concatenation. conv1 becomes two convs (the 32 channels conv3 sees, the 16 that pass through) and
    conv2 the sum of two convs over those halves, an add the runtimes fuse into the conv: no copy of the features
    per block (bench/bench_infer.py measures the difference)."""

    def __init__(self, block):
        super().__init__()
        p = block.num_partial_feat
        self.attn = block.attn
        w1, b1 = block.conv1.rep_conv.weight.detach(), block.conv1.rep_conv.bias.detach()
        w2, b2 = block.conv2.rep_conv.weight.detach(), block.conv2.rep_conv.bias.detach()
        self.conv1_partial, self.conv1_rest = _conv(w1[:p], b1[:p]), _conv(w1[p:], b1[p:])
        self.conv3 = block.conv3.rep_conv
        self.conv2_partial, self.conv2_rest = _conv(w2[:, :p], b2), _conv(w2[:, p:], None)

    def forward(self, x):
        x = self.attn(x)
        head = F.leaky_relu(self.conv3(F.leaky_relu(self.conv1_partial(x), 0.05)), 0.05)
        rest = F.leaky_relu(self.conv1_rest(x), 0.05)
        return F.leaky_relu(self.conv2_partial(head) + self.conv2_rest(rest), 0.05) + x


def _conv(weight, bias):
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[-1], padding=weight.shape[-1] // 2,
                     bias=bias is not None)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    return conv


def graph_form(net):
    """A copy of a deployed PFDN whose blocks are :class:`SplitPFDB` (same function, same parameters); what
    ``export_onnx`` exports."""
    graph = copy.deepcopy(net).eval()
    for block in list(graph.blocks):
        name = next(n for n, m in graph.named_children() if m is block)
        setattr(graph, name, SplitPFDB(block))
    return graph


def export_onnx(net, path, opset=17, sample_size=(64, 64)):
    """ONNX export of a deployed PFDN (as :func:`graph_form`) with dynamic batch, height and width
    (TorchScript-based exporter; the ESA's resize follows the runtime input size)."""
    export_module(graph_form(net), net.num_in_ch, path, opset, sample_size)


def export_module(module, in_ch, path, opset=17, sample_size=(64, 64)):
    """``module`` (a PFDN graph, plain or fake-quantized) as ONNX at ``path``, written atomically: input ``lr``,
    output ``sr``, dynamic batch, height and width: the interface every runner here expects."""
    x = torch.rand(1, in_ch, *sample_size)
    with warnings.catch_warnings(), torch.no_grad(), atomic_path(path) as tmp:
        warnings.simplefilter('ignore')
        torch.onnx.export(module, (x,), tmp, input_names=['lr'], output_names=['sr'], opset_version=opset,
                          dynamic_axes={'lr': {0: 'batch', 2: 'height', 3: 'width'},
                                        'sr': {0: 'batch', 2: 'sr_height', 3: 'sr_width'}}, dynamo=False)


def check_onnx(net, path, sizes=((1, 37, 41), (2, 64, 48), (1, 15, 15))):
    """Max |onnxruntime - PyTorch| over a few input sizes, or None when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    worst = 0.0
    g = torch.Generator().manual_seed(0)
    for n, h, w in sizes:
        x = torch.rand(n, net.num_in_ch, h, w, generator=g) * 0.5 + 0.25
        with torch.no_grad():
            ref = net(x).numpy()
        out = session.run(None, {'lr': x.numpy()})[0]
        if out.shape != ref.shape:
            raise RuntimeError(f'ONNX output shape {out.shape} differs from PyTorch {ref.shape}')
        diff = float(abs(out - ref).max())
        if not diff <= worst:  # NaN included: max(0.0, nan) would be 0.0
            worst = diff
    return worst


def output_paths(out_dir, name, formats):
    ext = {'pth': '.pth', 'safetensors': '.safetensors', 'onnx': '.onnx'}
    return {f: os.path.join(out_dir, name + ext[f]) for f in formats}
