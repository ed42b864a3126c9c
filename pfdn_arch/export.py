"""Deployed PFDN weights for other tools: .pth (released layout), .safetensors, ONNX (dynamic H and W)."""
import os
import warnings

import torch

from .errors import UserError


def save_pth(state_dict, path):
    torch.save({k: v.contiguous() for k, v in state_dict.items()}, path)


def save_safetensors(state_dict, path, metadata=None):
    try:
        from safetensors.torch import save_file
    except ImportError:
        raise UserError("writing .safetensors needs the safetensors package: pip install 'pfdn[export]'") from None
    save_file({k: v.contiguous() for k, v in state_dict.items()}, path, metadata=metadata or {})


def export_onnx(net, path, opset=17, sample_size=(64, 64)):
    """ONNX export of a deployed PFDN with dynamic batch, height and width (TorchScript-based exporter; the
    ESA's resize follows the runtime input size)."""
    net = net.eval()
    x = torch.rand(1, net.num_in_ch, *sample_size)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')
        torch.onnx.export(net, (x,), path, input_names=['lr'], output_names=['sr'], opset_version=opset,
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
        worst = max(worst, float(abs(out - ref).max()))
    return worst


def output_paths(out_dir, name, formats):
    ext = {'pth': '.pth', 'safetensors': '.safetensors', 'onnx': '.onnx'}
    return {f: os.path.join(out_dir, name + ext[f]) for f in formats}
