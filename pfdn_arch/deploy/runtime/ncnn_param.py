"""An NCNN ``.param`` text as layers, and what its ``.bin`` must hold: read by the runner before NCNN loads the files
(a ``.bin`` of another model, or one cut short, would otherwise run or fail inside NCNN), and by the export, which
rewrites the graph (``deploy/export/ncnn_graph.py``)."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

MAGIC = '7767517'
FP16_TAG = 0x01306B47  # a weight blob stored as fp16 (NCNN's ModelBin); 0 is fp32
# layers whose weights are (tag, weight_data_size values, then num_output fp32 biases when bias_term)
TAGGED_WEIGHTS = ('Convolution', 'ConvolutionDepthWise', 'Deconvolution', 'DeconvolutionDepthWise', 'InnerProduct')
NO_WEIGHTS = ('Input', 'Split', 'Crop', 'BinaryOp', 'Eltwise', 'Concat', 'Interp', 'PixelShuffle', 'ReLU', 'Pooling',
              'Sigmoid', 'Padding', 'Flatten', 'Reshape', 'Permute', 'Clip', 'Swish', 'UnaryOp', 'Slice')


@dataclass
class Layer:
    """One line of a ``.param``: its type, name, input and output blobs, and its ``key=value`` params as written."""
    kind: str
    name: str
    inputs: List[str]
    outputs: List[str]
    params: Dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        params = ' '.join(f'{k}={v}' for k, v in self.params.items())
        return ' '.join([self.kind, self.name, str(len(self.inputs)), str(len(self.outputs)), *self.inputs,
                         *self.outputs] + ([params] if params else []))

    def get(self, key: str, default: int) -> int:
        """An integer param (``default`` when absent)."""
        return int(self.params.get(key, default))


def parse(text: str) -> List[Layer]:
    """The layers of a ``.param`` text. ValueError when it is not one."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != [MAGIC]:
        raise ValueError(f'not an NCNN .param (its first line is not the magic number {MAGIC})')
    layers = []
    for parts in lines[2:]:
        n_in, n_out = int(parts[2]), int(parts[3])
        blobs = parts[4:4 + n_in + n_out]
        params = dict(p.split('=', 1) for p in parts[4 + n_in + n_out:])
        layers.append(Layer(parts[0], parts[1], blobs[:n_in], blobs[n_in:], params))
    return layers


def serialize(layers: Sequence[Layer]) -> str:
    """The ``.param`` text of ``layers``, with the layer and blob counts NCNN checks."""
    blobs = {b for layer in layers for b in layer.outputs}
    return '\n'.join([MAGIC, f'{len(layers)} {len(blobs)}'] + [layer.line() for layer in layers]) + '\n'


def bin_bytes(layers: Sequence[Layer], data: bytes) -> Optional[int]:
    """How many bytes of ``data`` (a ``.bin``) the ``layers`` read, following each weight blob's fp16/fp32 tag, or
    None where a layer's weights are not known here. ValueError when ``data`` ends before a layer's weights do."""
    at = 0
    for layer in layers:
        if layer.kind in NO_WEIGHTS:
            continue
        if layer.kind not in TAGGED_WEIGHTS:
            return None
        count = layer.get('6' if layer.kind != 'InnerProduct' else '2', 0)
        if at + 4 > len(data):
            raise ValueError(f'it ends before the weights of layer {layer.name}')
        tag = int.from_bytes(data[at:at + 4], 'little')
        at += 4 + (((2 * count + 3) // 4) * 4 if tag == FP16_TAG else 4 * count)  # fp16 blobs are 4-byte aligned
        at += 4 * layer.get('0', 0) if layer.get('5' if layer.kind != 'InnerProduct' else '1', 0) else 0
        if at > len(data):
            raise ValueError(f'it ends before the weights of layer {layer.name}')
    return at
