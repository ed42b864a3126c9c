"""The deployed network as NCNN files (``.param`` + ``.bin``) for Upscayl, chaiNNer and other NCNN apps, made by pnnx.

What the apps read, and so what is written (checked before the files take their names):
- Upscayl reads a model's scale from its file name alone ("2x"/"x2", "3x"/"x3", else 4): the files are named
  ``<scale>x-PFDN`` by default;
- the graph is rewritten (``ncnn_graph.portable``) to use only the layers the NCNN inside Upscayl's shipped binary
  registers (no Pooling, no Sigmoid), with blobs ``data``/``output`` and no size expressions, and so that chaiNNer's
  NCNN loader reads the scale off it;
- sizes stay free: nothing in the graph fixes the input size (tiles of any size, odd ones too).
Weights are fp16 by default (what NCNN apps run on GPUs), fp32 on request.
"""
import os
import subprocess
import tempfile
import warnings
from typing import List, Tuple

import torch

from ...archs import spec_for
from ...archs.spec import SRNetwork
from ...errors import PFDNError, require
from ...files.atomic import write_bytes, write_text
from .ncnn_graph import INPUT, OUTPUT, Unportable, parse, portable, unsupported

TRACE_SIZES = ((64, 64), (48, 80))  # pnnx sees two input sizes, so that it keeps height and width free


def default_name(scale: int) -> str:
    """The file stem Upscayl reads the scale ``scale`` from."""
    return f'{scale}x-PFDN'


def scale_from_name(name: str) -> int:
    """The scale Upscayl gives a model of file stem ``name`` (it reads nothing else)."""
    low = name.lower()
    return 2 if ('x2' in low or '2x' in low) else 3 if ('x3' in low or '3x' in low) else 4


def problems(text: str) -> List[str]:
    """What in an NCNN ``.param`` text an app could not read: what Upscayl's shipped NCNN cannot create
    (``ncnn_graph.unsupported``), string-valued params (size expressions), and blobs other than ``data`` in and
    ``output`` out."""
    layers = parse(text)
    found = unsupported(layers)
    found += [f'layer {layer.name} has the expression {k}={v}, which older NCNN builds cannot read'
              for layer in layers for k, v in layer.params.items() if '"' in v]
    inputs = [layer.outputs[0] for layer in layers if layer.kind == 'Input']
    produced = {b for layer in layers for b in layer.outputs}
    consumed = {b for layer in layers for b in layer.inputs}
    if inputs != [INPUT]:
        found.append(f'its input blobs are {inputs}, not [{INPUT!r}]')
    if sorted(produced - consumed) != [OUTPUT]:
        found.append(f'its output blobs are {sorted(produced - consumed)}, not [{OUTPUT!r}]')
    return found


def pnnx_files(net: SRNetwork, fp16: bool = True) -> Tuple[str, bytes]:
    """What pnnx makes of the deployed ``net`` (its spec's graph form): the ``.param`` text as pnnx wrote it (its
    Pooling, fused sigmoids, ``in0``/``out0``) and the ``.bin`` bytes. PFDNError when pnnx fails."""
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
            raise PFDNError(f'pnnx could not convert the network ({tail[0][:160]})')
        with open(os.path.join(tmp, 'n.param')) as f, open(os.path.join(tmp, 'n.bin'), 'rb') as b:
            return f.read(), b.read()


def export_ncnn(net: SRNetwork, out_dir: str, name: str, fp16: bool = True) -> Tuple[str, str]:
    """Write ``<name>.param`` and ``<name>.bin`` of the deployed ``net`` into ``out_dir``: pnnx's files with the
    graph made portable (``ncnn_graph.portable``), each written atomically, the weights before the graph that points
    into them. PFDNError when the result has anything an app could not read (nothing is written then). Returns the
    two paths."""
    try:
        raw, weights = pnnx_files(net, fp16)
    except PFDNError as e:
        raise PFDNError(e.reason, out_dir) from None
    try:
        text = portable(raw)
    except Unportable as e:
        raise PFDNError(f'the NCNN graph cannot be made to run in the apps ({e}); nothing was written',
                        out_dir) from None
    found = problems(text)
    if found:
        raise PFDNError(f'the NCNN files would not run in the apps ({found[0]}); nothing was written', out_dir)
    paths = os.path.join(out_dir, name + '.param'), os.path.join(out_dir, name + '.bin')
    write_bytes(paths[1], weights)
    write_text(paths[0], text)
    return paths
