"""The deployed network as NCNN files (``.param`` + ``.bin``) for Upscayl and other NCNN apps, made by pnnx.

What the apps read, and so what is written (checked before the files take their names):
- Upscayl reads a model's scale from its file name alone ("2x"/"x2", "3x"/"x3", else 4): the files are named
  ``<scale>x-PFDN`` by default;
- its NCNN finds the blobs ``data`` and ``output`` (pnnx names them ``in0``/``out0``);
- its NCNN is built with a layer whitelist (``UPSCAYL_LAYERS``, upscayl-ncnn's CMake options): no UnaryOp, and
  chaiNNer's NCNN path refuses MemoryData, so only whitelisted layers are written;
- pnnx writes the ESA's resize to its input's size as an Interp with two inputs and a size expression
  (``9="1w,1h"``), which older NCNN builds cannot parse; the two-input Interp alone takes the second input's size in
  every build, so the expression is dropped (the same function);
- sizes stay free: nothing in the graph fixes the input size (tiles of any size, odd ones too).
Weights are fp16 by default (what NCNN apps run on GPUs; Set5 within 0.001 dB of PyTorch), fp32 on request.
"""
import os
import subprocess
import tempfile
import warnings
from typing import List, Tuple

import torch

from ...archs import spec_for
from ...errors import PFDNError, require
from ...files.atomic import write_bytes, write_text

# the layers upscayl-ncnn builds (WITH_LAYER_* ON in its src/CMakeLists.txt), by NCNN's type names
UPSCAYL_LAYERS = frozenset((
    'BinaryOp', 'Cast', 'Clip', 'Concat', 'Convolution', 'ConvolutionDepthWise', 'Crop', 'Deconvolution', 'Eltwise',
    'Flatten', 'GELU', 'InnerProduct', 'Input', 'Interp', 'LayerNorm', 'MemoryData', 'Packing', 'Padding', 'Permute',
    'Pooling', 'PReLU', 'PixelShuffle', 'Reduction', 'ReLU', 'Reorg', 'Reshape', 'Sigmoid', 'Slice', 'Split',
    'Swish'))
REFUSED_LAYERS = frozenset(('MemoryData',))  # chaiNNer's NCNN path refuses constants stored as layers
INPUT, OUTPUT = 'data', 'output'
TRACE_SIZES = ((64, 64), (48, 80))  # pnnx sees two input sizes, so that it keeps height and width free


def default_name(scale: int) -> str:
    """The file stem Upscayl reads the scale ``scale`` from."""
    return f'{scale}x-PFDN'


def scale_from_name(name: str) -> int:
    """The scale Upscayl gives a model of file stem ``name`` (it reads nothing else)."""
    low = name.lower()
    return 2 if ('x2' in low or '2x' in low) else 3 if ('x3' in low or '3x' in low) else 4


def param_layers(text: str) -> List[Tuple[str, str, List[str], List[str], List[str]]]:
    """(type, name, inputs, outputs, params) of each layer of an NCNN ``.param`` text."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != ['7767517']:
        raise ValueError('not an NCNN .param (its first line is not the magic number 7767517)')
    layers = []
    for parts in lines[2:]:
        kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
        blobs = parts[4:4 + n_in + n_out]
        layers.append((kind, name, blobs[:n_in], blobs[n_in:], parts[4 + n_in + n_out:]))
    return layers


def problems(text: str) -> List[str]:
    """What in an NCNN ``.param`` text an app could not read: layers outside Upscayl's whitelist or refused by
    chaiNNer, string-valued params (size expressions), and blobs other than ``data`` in and ``output`` out."""
    found = []
    layers = param_layers(text)
    for kind, name, _, _, params in layers:
        if kind not in UPSCAYL_LAYERS or kind in REFUSED_LAYERS:
            found.append(f'layer {name} is a {kind}, which Upscayl or chaiNNer cannot run')
        found += [f'layer {name} has the expression {p}, which older NCNN builds cannot read' for p in params
                  if '"' in p]
    inputs = [outs[0] for kind, _, _, outs, _ in layers if kind == 'Input']
    produced = {b for _, _, _, outs, _ in layers for b in outs}
    consumed = {b for _, _, ins, _, _ in layers for b in ins}
    if inputs != [INPUT]:
        found.append(f'its input blobs are {inputs}, not [{INPUT!r}]')
    if sorted(produced - consumed) != [OUTPUT]:
        found.append(f'its output blobs are {sorted(produced - consumed)}, not [{OUTPUT!r}]')
    return found


def for_apps(text: str) -> str:
    """pnnx's ``.param`` text as the apps read it: the blobs named ``data``/``output``, and each two-input Interp
    without its size expression (the second input's size is what both say)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 4 and line[0].isalpha():
            n_in, n_out = int(parts[2]), int(parts[3])
            blobs = [INPUT if b == 'in0' else OUTPUT if b == 'out0' else b for b in parts[4:4 + n_in + n_out]]
            params = parts[4 + n_in + n_out:]
            if parts[0] == 'Interp' and n_in == 2:
                params = [p for p in params if not p.startswith('9=')]
            line = ' '.join(parts[:4] + blobs + params)
        out.append(line)
    return '\n'.join(out) + '\n'


def export_ncnn(net: torch.nn.Module, out_dir: str, name: str, fp16: bool = True) -> Tuple[str, str]:
    """Write ``<name>.param`` and ``<name>.bin`` of the deployed ``net`` (its spec's graph form) into ``out_dir``,
    each atomically, the weights before the graph that points into them. PFDNError when the result has anything
    an app could not read (nothing is written then). Returns the two paths."""
    pnnx = require('pnnx', 'NCNN export', 'ncnn')
    graph = spec_for(net).graph_form(net.float().cpu()).eval()
    inputs = [torch.rand(1, net.num_in_ch, h, w) for h, w in TRACE_SIZES]
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # TorchScript's deprecation notes: pnnx reads a traced graph
        traced = os.path.join(tmp, 'graph.pt')
        torch.jit.trace(graph, inputs[0], check_trace=False).save(traced)
        shapes = [f"[{','.join(str(d) for d in x.shape)}]f32" for x in inputs]
        # pnnx's own binary, run here rather than through pnnx.convert, which ignores its exit status and output
        run = subprocess.run([pnnx.EXEC_PATH, traced, f'inputshape={shapes[0]}', f'inputshape2={shapes[1]}',
                              'device=cpu', f'fp16={int(fp16)}', f"ncnnparam={os.path.join(tmp, 'n.param')}",
                              f"ncnnbin={os.path.join(tmp, 'n.bin')}", f"pnnxparam={os.path.join(tmp, 'p.param')}",
                              f"pnnxbin={os.path.join(tmp, 'p.bin')}", f"pnnxpy={os.path.join(tmp, 'p.py')}",
                              f"pnnxonnx={os.path.join(tmp, 'p.onnx')}", f"ncnnpy={os.path.join(tmp, 'n.py')}"],
                             cwd=tmp, capture_output=True, text=True)
        if run.returncode != 0 or not os.path.isfile(os.path.join(tmp, 'n.param')):
            tail = (run.stderr or run.stdout).strip().splitlines()[-1:] or ['no output']
            raise PFDNError(f'pnnx could not convert the network ({tail[0][:160]})', out_dir)
        with open(os.path.join(tmp, 'n.param')) as f:
            text = for_apps(f.read())
        found = problems(text)
        if found:
            raise PFDNError(f'the NCNN files would not run in the apps ({found[0]}); nothing was written', out_dir)
        with open(os.path.join(tmp, 'n.bin'), 'rb') as f:
            weights = f.read()
    paths = os.path.join(out_dir, name + '.param'), os.path.join(out_dir, name + '.bin')
    write_bytes(paths[1], weights)
    write_text(paths[0], text)
    return paths
