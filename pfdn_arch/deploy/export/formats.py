"""Deployed PFDN weights for other tools: the writers of .pth (released layout), .safetensors and ONNX (dynamic H and
W: the graph the runtimes run, ``runtime.onnx_graph``), and the check of an ONNX file against PyTorch. Each writes
the path it is given; ``steps`` gives them a temporary one that takes the final name once checked."""
from typing import Any, Dict, Optional, Sequence, Tuple

import torch

from ...errors import installed, require
from ..runtime.onnx_graph import export_onnx

__all__ = ['check_onnx', 'export_onnx', 'save_pth', 'save_safetensors']


def save_pth(state_dict: Dict[str, torch.Tensor], path: str) -> None:
    torch.save({k: v.contiguous() for k, v in state_dict.items()}, path)


def save_safetensors(state_dict: Dict[str, torch.Tensor], path: str, metadata: Optional[dict] = None) -> None:
    save_file = require('safetensors.torch', 'writing .safetensors', 'export', 'safetensors').save_file
    save_file({k: v.contiguous() for k, v in state_dict.items()}, path, metadata=metadata or {})


def check_onnx(net: Any, path: str,
               sizes: Sequence[Tuple[int, int, int]] = ((1, 37, 41), (2, 64, 48), (1, 15, 15))) -> Optional[float]:
    """Max |onnxruntime - PyTorch| over a few input sizes, or None when onnxruntime is not installed."""
    if not installed('onnxruntime'):
        return None
    ort = require('onnxruntime', 'checking the ONNX export', 'export')
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
