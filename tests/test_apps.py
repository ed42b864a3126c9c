"""PFDN where people upscale (issue 26): ComfyUI's stock loader after the custom node's import alone, NCNN files for
Upscayl (whitelist, names, blobs, free sizes, Upscayl's tiling, Vulkan through lavapipe), ``basicsr infer`` on them,
and chaiNNer's onnxruntime (1.17) with its scale probe. The apps' own binaries are not run here; their loading
sequences are, as their code does them."""
import os
import shutil
import site
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from pathlib import Path

from conftest import ENV, ROOT, WEIGHTS, cli, need_shared, randomized
from pfdn_arch.archs import PFDN
from pfdn_arch.cli.main import main
from pfdn_arch.deploy.export.ncnn import UPSCAYL_LAYERS, param_layers, problems, scale_from_name
from pfdn_arch.deploy.runtime.ncnn_runner import NcnnRunner
from pfdn_arch.files.checkpoints import build_pfdn_from_checkpoint
from pfdn_arch.files.samples import sample_image
from pfdn_arch.recipe.protocol import evaluate_folder

NODE = os.path.join(ROOT, 'pfdn_arch', 'comfyui_node')


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """The released weights and a random x2 and x3 PFDN, exported as .pth and .safetensors, NCNN (x3 with fp32
    weights) and, for the released weights, ONNX."""
    out = tmp_path_factory.mktemp('exported')
    files = {4: Path(need_shared(WEIGHTS))}
    for scale in (2, 3):
        files[scale] = out / f'random_x{scale}.pth'
        torch.save(randomized(PFDN(upscale=scale, num_block=2, num_feat=16, num_partial_feat=8, esa_channels=8),
                              seed=scale).eval().state_dict(), files[scale])
    for scale, src in files.items():
        formats = ['pth', 'safetensors'] + (['onnx'] if scale == 4 else [])
        args = ['export', '--weights', src, '--out', out, '--name', f'pfdn_x{scale}', '--formats', *formats,
                '--ncnn'] + (['--ncnn-fp32'] if scale == 3 else [])
        assert main([str(a) for a in args]) == 0
    return out, files


def lr_photo(name='coffee.png', size=(100, 150)):
    """A real photo, downscaled to ``size`` (h, w): BGR uint8."""
    return cv2.resize(sample_image(name), size[::-1], interpolation=cv2.INTER_AREA)


# ------------------------------------------------------------------------------------------------------ ComfyUI
COMFY = r'''
import importlib.util, json, os, sys
import numpy as np, torch
node_dir, files, image_path, out_path = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
import spandrel
assert 'PFDN' not in spandrel.MAIN_REGISTRY  # nothing has taught spandrel PFDN yet
# ComfyUI's nodes.load_custom_node: the folder imported by path, as a module named after it
name = os.path.basename(node_dir)
spec = importlib.util.spec_from_file_location(name, os.path.join(node_dir, '__init__.py'),
                                              submodule_search_locations=[node_dir])
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
assert isinstance(module.NODE_CLASS_MAPPINGS, dict)
from spandrel import ImageModelDescriptor, ModelLoader

def load_torch_file(ckpt):  # comfy.utils.load_torch_file(ckpt, safe_load=True)
    if ckpt.lower().endswith(('.safetensors', '.sft')):
        import safetensors.torch
        return safetensors.torch.load_file(ckpt, device='cpu')
    pl_sd = torch.load(ckpt, map_location='cpu', weights_only=True)
    return pl_sd['state_dict'] if 'state_dict' in pl_sd else pl_sd

def tiled_scale(samples, function, tile=512, overlap=32, upscale_amount=4):  # comfy.utils.tiled_scale, 2-D
    s = samples
    out = torch.zeros([1, 3] + [round(d * upscale_amount) for d in s.shape[2:]])
    div = torch.zeros_like(out)
    for y in range(0, s.shape[2], tile - overlap):
        for x in range(0, s.shape[3], tile - overlap):
            y0 = max(0, min(s.shape[2] - overlap, y)); x0 = max(0, min(s.shape[3] - overlap, x))
            h, w = min(tile, s.shape[2] - y0), min(tile, s.shape[3] - x0)
            ps = function(s[:, :, y0:y0 + h, x0:x0 + w])
            mask = torch.ones_like(ps)
            feather = round(overlap * upscale_amount)
            for t in range(feather):
                a = (1.0 / feather) * (t + 1)
                for d in (2, 3):
                    mask.narrow(d, t, 1).mul_(a)
                    mask.narrow(d, mask.shape[d] - 1 - t, 1).mul_(a)
            Y, X = round(y0 * upscale_amount), round(x0 * upscale_amount)
            out[:, :, Y:Y + ps.shape[2], X:X + ps.shape[3]] += ps * mask
            div[:, :, Y:Y + ps.shape[2], X:X + ps.shape[3]] += mask
    return out / div

results = {}
for path in files:
    model = ModelLoader().load_from_state_dict(load_torch_file(path)).eval()  # UpscaleModelLoader.load_model
    assert isinstance(model, ImageModelDescriptor), type(model)
    results[os.path.basename(path)] = [model.architecture.id, model.scale]
bgr = np.load(image_path)
image = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1]).astype(np.float32) / 255)[None]  # ComfyUI's IMAGE
model = ModelLoader().load_from_state_dict(load_torch_file(files[0])).eval()
with torch.inference_mode():  # ImageUpscaleWithModel.upscale
    s = tiled_scale(image.movedim(-1, -3), lambda a: model(a), upscale_amount=model.scale)
s = torch.clamp(s.movedim(-3, -1), min=0, max=1.0)
np.save(out_path, s[0].numpy())
print(json.dumps(results))
'''


def run_comfy(node_dir, files, image, tmp_path, env=ENV, python=(sys.executable,)):
    np.save(tmp_path / 'image.npy', image)
    import json
    r = subprocess.run([*python, '-c', COMFY, str(node_dir), json.dumps([str(f) for f in files]),
                        str(tmp_path / 'image.npy'), str(tmp_path / 'comfy.npy')], capture_output=True, text=True,
                       env=env, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.splitlines()[-1]), np.load(tmp_path / 'comfy.npy')


def test_comfyuis_stock_loader_loads_pfdn_after_the_nodes_import_and_matches_infer(exported, tmp_path, capsys):
    out, files = exported
    code, where, _ = cli(['export', '--comfyui-node'], capsys)  # the README's way to the folder
    assert code == 0 and where.strip() == NODE
    link = tmp_path / 'custom_nodes' / 'ComfyUI-PFDN'  # as a user links it
    link.parent.mkdir()
    os.symlink(where.strip(), link)
    loaded = [out / f'pfdn_x{s}{ext}' for s in (4, 2, 3) for ext in ('.pth', '.safetensors')] + [files[4]]
    image = lr_photo()
    found, comfy = run_comfy(link, loaded, image, tmp_path)
    assert found == {p.name: ['PFDN', int(p.name.split('_x')[1][0]) if '_x' in p.name else 4] for p in loaded}
    cv2.imwrite(str(tmp_path / 'lr.png'), image)
    code, _, err = cli(['infer', '-i', tmp_path / 'lr.png', '-o', tmp_path / 'sr.png', '--weights', files[4],
                        '--backend', 'torch', '--dtype', 'fp32'], capsys)
    assert code == 0, err
    ours = cv2.imread(str(tmp_path / 'sr.png'))[:, :, ::-1].astype(np.float32) / 255
    assert comfy.shape == ours.shape == (400, 600, 3)
    assert np.abs(comfy - ours).max() <= 0.5 / 255 + 1e-4  # infer's PNG holds the same pixels, rounded
    net, _ = build_pfdn_from_checkpoint(files[4])
    x = torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)).astype(np.float32) / 255)[None]
    with torch.no_grad():
        exact = net(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert np.abs(comfy - exact).max() <= 1e-4


def test_the_node_finds_the_package_through_its_link_where_comfyuis_python_lacks_it(exported, tmp_path):
    out, files = exported
    link = tmp_path / 'custom_nodes' / 'pfdn'
    link.parent.mkdir()
    os.symlink(NODE, link)
    # python -S: no site-packages .pth files, so pfdn (an editable install here) is not importable; the libraries
    # ComfyUI brings (torch, spandrel, ...) are given by path
    env = dict(ENV, PYTHONPATH=os.pathsep.join(site.getsitepackages()))
    probe = subprocess.run([sys.executable, '-S', '-c', 'import pfdn_arch'], capture_output=True, text=True, env=env,
                           cwd=tmp_path)
    assert probe.returncode != 0 and 'pfdn_arch' in probe.stderr
    found, _ = run_comfy(link, [out / 'pfdn_x2.safetensors'], lr_photo(size=(40, 40)), tmp_path, env=env,
                         python=(sys.executable, '-S'))
    assert found == {'pfdn_x2.safetensors': ['PFDN', 2]}
    copied = tmp_path / 'copied'  # a copy, with no pfdn to be found: one line saying what to do
    shutil.copytree(NODE, copied)
    r = subprocess.run([sys.executable, '-S', '-c', f'import runpy; runpy.run_path({str(copied / "__init__.py")!r})'],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode != 0 and 'PFDN for ComfyUI needs the pfdn package' in r.stderr
    assert 'link this folder' in r.stderr


# ------------------------------------------------------------------------------------------------- NCNN, Upscayl
def test_ncnn_files_have_only_layers_upscayl_builds_named_blobs_and_no_expressions(exported):
    out, _ = exported
    for scale in (4, 2, 3):
        name = f'pfdn_x{scale}'
        text = (out / f'{name}.param').read_text()
        assert problems(text) == []
        layers = param_layers(text)
        kinds = {kind for kind, *_ in layers}
        assert kinds <= UPSCAYL_LAYERS and 'UnaryOp' not in kinds and 'MemoryData' not in kinds
        assert {'Convolution', 'Interp', 'Pooling', 'PixelShuffle'} <= kinds
        assert [outs for kind, _, _, outs, _ in layers if kind == 'Input'] == [['data']]
        assert layers[-1][3] == ['output'] and '"' not in text  # no size expression (9="...")
        interps = [ins for kind, _, ins, _, _ in layers if kind == 'Interp']
        assert interps and all(len(ins) == 2 for ins in interps)  # the form every NCNN build reads
    # fp16 weights by default, fp32 on request (x3 was exported with --ncnn-fp32)
    def deployed_weights(path):
        return sum(v.numel() for v in build_pfdn_from_checkpoint(path)[0].reparameterize().state_dict().values())
    n4, n3 = deployed_weights(exported[1][4]), deployed_weights(exported[1][3])
    assert (out / 'pfdn_x4.bin').stat().st_size < 2.2 * n4  # 2 bytes a weight, plus NCNN's tags
    assert (out / 'pfdn_x3.bin').stat().st_size >= 4 * n3
    assert problems(text.replace('Split', 'UnaryOp', 1)) and problems(text.replace(' 0=2 ', ' 9="1w,1h" 0=2 ', 1))


def test_the_default_names_give_upscayl_the_scale(weights, tmp_path, capsys):
    assert [scale_from_name(n) for n in ('4x-PFDN', '2x-PFDN', '3x-PFDN', 'pfdn_x2', 'PFDN')] == [4, 2, 3, 2, 4]
    code, out, err = cli(['export', '--weights', weights, '--out', tmp_path, '--formats', 'pth', '--ncnn'], capsys)
    assert code == 0 and (tmp_path / '4x-PFDN.param').is_file() and (tmp_path / '4x-PFDN.bin').is_file()
    code, _, err = cli(['export', '--weights', weights, '--out', tmp_path / 'b', '--formats', 'pth', '--ncnn',
                        '--name', 'pfdn_fast_x2'], capsys)
    assert code == 0 and any('Upscayl reads the scale from the file name' in line and 'x2, not x4' in line
                             for line in err)
    code, _, err = cli(['export', '--weights', weights, '--out', tmp_path, '--formats', 'pth', '--ncnn'], capsys)
    assert code == 2 and err[-1].startswith('error: ') and '--force' in err[-1]  # nothing replaced


@pytest.fixture(scope='module')
def released_ncnn(exported):
    out, files = exported
    net, _ = build_pfdn_from_checkpoint(files[4])
    return net.eval(), NcnnRunner(str(out / 'pfdn_x4.param'), torch.get_num_threads())


def test_ncnn_runs_any_size_as_pytorch_does(released_ncnn):
    net, runner = released_ncnn
    assert runner.upscale == 4
    for h, w in ((16, 16), (37, 53), (220, 220)):  # the smallest, odd, and one of Upscayl's padded tiles
        x = torch.from_numpy(np.ascontiguousarray(lr_photo(size=(h, w))[:, :, ::-1].transpose(2, 0, 1))
                             .astype(np.float32) / 255)[None]
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
    """Upscayl's tiling (upscayl-ncnn realesrgan.cpp): tiles of ``tile`` px, each read with ``pad`` px more on every
    side (the image's edge repeated outside it), run, and the padding cut off its result; no blending."""
    h, w = image.shape[1:]
    padded = np.pad(image, ((0, 0), (pad, pad), (pad, pad)), mode='edge')
    out = np.zeros((3, h * scale, w * scale), np.float32)
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            th, tw = min(tile, h - y), min(tile, w - x)
            sr = run(padded[:, y:y + th + 2 * pad, x:x + tw + 2 * pad])
            out[:, y * scale:(y + th) * scale, x * scale:(x + tw) * scale] = \
                sr[:, pad * scale:(pad + th) * scale, pad * scale:(pad + tw) * scale]
    return out


def test_upscaylstyle_tiles_give_the_whole_images_result_but_at_the_seams(released_ncnn):
    _, runner = released_ncnn
    image = np.ascontiguousarray(lr_photo('astronaut.png', (300, 420))[:, :, ::-1].transpose(2, 0, 1)) \
        .astype(np.float32) / 255
    run = lambda chw: runner(torch.from_numpy(np.ascontiguousarray(chw))[None])[0].numpy()  # noqa: E731
    whole, tiled = run(image), upscayl_tiles(run, image, 4)
    assert tiled.shape == whole.shape == (3, 1200, 1680)
    mse = float(np.mean((np.clip(tiled, 0, 1) - np.clip(whole, 0, 1)) ** 2))
    assert 10 * np.log10(1 / mse) > 40  # the attention sees 10 px past each seam: nearly the whole image's result
    inner = np.abs(tiled[:, 100:700, 100:700] - whole[:, 100:700, 100:700])  # within the first tile
    assert inner.mean() < 1e-3


LAVAPIPE = 'mesa-vulkan-drivers'  # Debian's package of Mesa's Vulkan drivers, lavapipe among them


def vulkan_devices():
    r = subprocess.run([sys.executable, '-c', 'import ncnn; print(ncnn.get_gpu_count())'], capture_output=True,
                       text=True, timeout=120)
    return int(r.stdout.split()[-1]) if r.returncode == 0 and r.stdout.strip() else 0


def test_ncnn_runs_on_vulkan_through_lavapipe_as_on_the_cpu(exported, tmp_path, capsys):
    if not vulkan_devices() and shutil.which('apt-get') and os.geteuid() == 0:
        subprocess.run(['apt-get', 'install', '-y', '-q', LAVAPIPE], capture_output=True, timeout=600)
    if not vulkan_devices():
        pytest.skip(f'no Vulkan device here, and {LAVAPIPE} could not be installed: NCNN on Vulkan is not checked')
    out, files = exported
    image = lr_photo(size=(40, 56))
    cv2.imwrite(str(tmp_path / 'lr.png'), image)
    results = {}
    for device in ('cpu', 'vulkan'):
        code, _, err = cli(['infer', '-i', tmp_path / 'lr.png', '-o', tmp_path / f'{device}.png', '--weights',
                            out / 'pfdn_x4.param', '--device', device], capsys)
        assert code == 0, err
        assert any(line.startswith(f'backend: ncnn (pfdn_x4.param, {device}') for line in err), err
        results[device] = cv2.imread(str(tmp_path / f'{device}.png')).astype(int)
    assert results['cpu'].shape == (160, 224, 3)
    assert np.abs(results['cpu'] - results['vulkan']).mean() < 0.5  # fp16 on the device: a level here and there
    code, _, err = cli(['infer', '-i', tmp_path / 'lr.png', '-o', tmp_path / 'x.png', '--weights',
                        out / 'pfdn_x4.param', '--device', 'vulkan:7'], capsys)
    assert code == 2 and err[-1].startswith('error: --device: there is no Vulkan device 7')


def test_infer_runs_ncnn_files_and_says_what_is_missing(exported, tmp_path, capsys):
    out, _ = exported
    image = lr_photo(size=(30, 44))
    cv2.imwrite(str(tmp_path / 'lr.png'), image)
    code, stdout, err = cli(['infer', '-i', tmp_path / 'lr.png', '-o', tmp_path / 'sr', '--weights',
                             out / 'pfdn_x2.param'], capsys)
    assert code == 0 and 'upscaled x2' in stdout and cv2.imread(str(tmp_path / 'sr' / 'lr.png')).shape == (60, 88, 3)
    assert not any('record' in line for line in err)  # int8 files' loss record: not something NCNN files have
    lonely = tmp_path / 'lonely.param'
    shutil.copy(out / 'pfdn_x2.param', lonely)  # without its .bin
    code, _, err = cli(['infer', '-i', tmp_path / 'lr.png', '-o', tmp_path / 'sr2', '--weights', lonely], capsys)
    assert code == 2 and len(err) >= 1 and 'lonely.bin' in err[-1] and err[-1].startswith('error: ')
    code, _, err = cli(['infer', '-i', tmp_path / 'lr.png', '-o', tmp_path / 'sr3', '--weights',
                        out / 'pfdn_x2.param', '--device', 'cuda'], capsys)
    assert code == 2 and 'cpu or vulkan' in err[-1]


# ------------------------------------------------------------------------------------------------------ chaiNNer
CHAINNER_ORT = 'onnxruntime==1.17.3'  # the onnxruntime chaiNNer ships
PROBE = r'''
import sys, numpy as np, onnxruntime as ort
assert ort.__version__ == sys.argv[2], ort.__version__
session = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])
name = session.get_inputs()[0].name
scales = set()
for size in (16, 64, 256, 512):  # chaiNNer's scale probe
    out = session.run(None, {name: np.full((1, 3, size, size), 0.5, np.float32)})[0]
    scales.add(out.shape[-1] / size)
x = np.load(sys.argv[3])
np.save(sys.argv[4], session.run(None, {name: x})[0])
print(sorted(scales))
'''


def test_the_onnx_export_runs_in_chainners_onnxruntime_with_scale_4_found(exported, tmp_path_factory):
    out, files = exported
    target = tmp_path_factory.mktemp('ort117')
    r = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--target', str(target), CHAINNER_ORT,
                        'numpy<2'], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    image = lr_photo(size=(48, 60))
    x = np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)).astype(np.float32)[None] / 255
    np.save(target / 'x.npy', x)
    env = dict(os.environ, PYTHONPATH=str(target))
    r = subprocess.run([sys.executable, '-s', '-c', PROBE, str(out / 'pfdn_x4.onnx'), CHAINNER_ORT.split('==')[1],
                        str(target / 'x.npy'), str(target / 'y.npy')], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split('\n')[-2] == '[4.0]'
    net, _ = build_pfdn_from_checkpoint(files[4])
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert np.abs(np.load(target / 'y.npy') - ref).max() <= 1e-4
