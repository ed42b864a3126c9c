"""A fast inference forward for the deployed PFDN (same function; fp32 outputs within ~1e-6 of the plain one).

What it does, each kept because it measured faster on CPU (bench/bench_fast.py):
- channels_last tensors throughout (oneDNN's native layout; no reorder around every conv);
- on CPU, oneDNN convolutions with the activation fused as a post-op (conv+LeakyReLU, conv+sigmoid) and the
  ESA's ``b + conv_f(c1)`` fused as a binary post-op (``torch.ops.mkldnn._convolution_pointwise``);
- the partial conv without copies: conv1 is computed as its 32- and 16-channel halves and conv2 as the sum of
  its two input-channel halves, so the released ``x[:, :32] = ...`` / ``cat`` never copies a feature map;
- in-place element-wise ops (sigmoid gate, residual adds) under ``torch.inference_mode``.
Optional: bf16 (fast on CPUs with AVX512-BF16/AMX), fp16 on CUDA, and ``torch.compile`` (see ``compile_fast``).
Measured and dropped: oneDNN weight prepacking (within noise), TorchScript freeze/optimize_for_inference
(slower), folding ESA's conv_f into conv4 at low resolution (no gain).
"""
import torch
from torch import nn
from torch.nn import functional as F

from .archs.esa import MIN_INPUT_SIZE


def _onednn_available():
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, '_convolution_pointwise')


class FastPFDN(nn.Module):
    """Inference-only PFDN built from a deployed (or training-form, fused here) PFDN.

    Args:
        net (PFDN): the network whose weights to use (not modified).
    """

    def __init__(self, net):
        super().__init__()
        if not net.deploy:
            import copy
            net = copy.deepcopy(net).reparameterize()
        self.upscale, self.num_in_ch, self.deploy = net.upscale, net.num_in_ch, True
        self.num_block = net.num_block
        self.partial = net.blocks[0].num_partial_feat
        sd = {k: v.detach().clone() for k, v in net.state_dict().items()}
        p = self.partial
        for i in range(1, self.num_block + 1):
            b = f'block{i}.'
            w1, b1 = sd.pop(b + 'conv1.rep_conv.weight'), sd.pop(b + 'conv1.rep_conv.bias')
            w2 = sd.pop(b + 'conv2.rep_conv.weight')
            sd.update({b + 'w1p': w1[:p], b + 'b1p': b1[:p], b + 'w1r': w1[p:], b + 'b1r': b1[p:],
                       b + 'w2p': w2[:, :p], b + 'w2r': w2[:, p:], b + 'b2': sd.pop(b + 'conv2.rep_conv.bias'),
                       b + 'w3': sd.pop(b + 'conv3.rep_conv.weight'), b + 'b3': sd.pop(b + 'conv3.rep_conv.bias')})
        self._names = {}
        for k, v in sd.items():
            name = k.replace('.', '_')
            v = v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v.contiguous()
            self.register_buffer(name, v)
            self._names[k] = name

    def w(self, key):
        return getattr(self, self._names[key])

    # conv helpers: oneDNN fused ops on CPU, plain F.conv2d elsewhere (CUDA: cuDNN)
    def _conv(self, x, w, b, pad=1, stride=1, act=None):
        if x.device.type == 'cpu' and self._onednn:
            attr, scalars = {'lrelu': ('leaky_relu', [0.05]), 'sigmoid': ('sigmoid', []), None: ('none', [])}[act]
            return torch.ops.mkldnn._convolution_pointwise(x, w, b, [pad, pad], [stride, stride], [1, 1], 1, attr,
                                                           scalars, '')
        y = F.conv2d(x, w, b, stride, pad)
        if act == 'lrelu':
            return F.leaky_relu_(y, 0.05)
        return y.sigmoid_() if act == 'sigmoid' else y

    def _conv_add(self, x, other, w, b, pad=1):
        """conv(x) + other, the add fused into the conv on CPU."""
        if x.device.type == 'cpu' and self._onednn:
            return torch.ops.mkldnn._convolution_pointwise.binary(x, other, w, b, [pad, pad], [1, 1], [1, 1], 1,
                                                                  'add', None, None, [], '')
        return F.conv2d(x, w, b, 1, pad).add_(other)

    def _esa(self, a, x):
        c1 = self._conv(x, self.w(a + 'conv1.weight'), self.w(a + 'conv1.bias'), 0)
        g = self._conv(c1, self.w(a + 'conv2.weight'), self.w(a + 'conv2.bias'), 0, 2)
        g = F.max_pool2d(g, kernel_size=7, stride=3)
        g = self._conv(g, self.w(a + 'conv3.weight'), self.w(a + 'conv3.bias'), 1)
        g = F.interpolate(g, size=x.shape[-2:], mode='bilinear', align_corners=False)
        s = self._conv_add(c1, g, self.w(a + 'conv_f.weight'), self.w(a + 'conv_f.bias'), 0)
        m = self._conv(s, self.w(a + 'conv4.weight'), self.w(a + 'conv4.bias'), 0, act='sigmoid')
        return m.mul_(x)

    def _block(self, i, x):
        b = f'block{i}.'
        x = self._esa(b + 'attn.', x)
        head = self._conv(x, self.w(b + 'w1p'), self.w(b + 'b1p'), act='lrelu')   # channels that get conv3
        rest = self._conv(x, self.w(b + 'w1r'), self.w(b + 'b1r'), act='lrelu')   # channels that pass through
        head = self._conv(head, self.w(b + 'w3'), self.w(b + 'b3'), act='lrelu')
        y = self._conv(head, self.w(b + 'w2p'), self.w(b + 'b2'))
        y = F.leaky_relu_(self._conv_add(rest, y, self.w(b + 'w2r'), None), 0.05)  # conv2 over [head, rest]
        return y.add_(x)

    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != self.num_in_ch or min(x.shape[-2:]) < MIN_INPUT_SIZE:
            raise ValueError(f'PFDN expects N x {self.num_in_ch} x H x W with H, W >= {MIN_INPUT_SIZE}, got '
                             f'{tuple(x.shape)}')
        dtype = self.conv_first_weight.dtype
        self._onednn = _onednn_available() and dtype in (torch.float32, torch.bfloat16)
        with torch.inference_mode():
            x = x.to(dtype).contiguous(memory_format=torch.channels_last)
            f0 = self._conv(x, self.w('conv_first.weight'), self.w('conv_first.bias'))
            f = f0
            for i in range(1, self.num_block + 1):
                f = self._block(i, f)
            f = self._conv_add(f, f0, self.w('conv_last.weight'), self.w('conv_last.bias'))
            y = self._conv(f, self.w('tail.0.weight'), self.w('tail.0.bias'))
            return self._pixel_shuffle_nhwc(y)

    def _pixel_shuffle_nhwc(self, y):
        """PixelShuffle of a channels_last tensor straight into a contiguous NCHW result (one copy, where
        F.pixel_shuffle + .contiguous() makes two)."""
        n, c, h, w = y.shape
        s = self.upscale
        out = y.permute(0, 2, 3, 1).reshape(n, h, w, c // (s * s), s, s)
        return out.permute(0, 3, 1, 4, 2, 5).reshape(n, c // (s * s), h * s, w * s)


def fast_pfdn(net, dtype=None, device=None):
    """The fast inference module for ``net`` (optionally cast to ``dtype`` and moved to ``device``)."""
    fast = FastPFDN(net)
    if device is not None or dtype is not None:
        fast = fast.to(device=device, dtype=dtype)
    return fast.eval()


def compile_fast(module, **kwargs):
    """``torch.compile`` of a module for fixed-shape inference (tiles, fixed-size batches). Compiles on the first
    call of each new shape (seconds to a minute); needs a C++ compiler on CPU."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True  # constant-fold weights: lets inductor prepack and fuse oneDNN convs
    return torch.compile(module, dynamic=False, **kwargs)
