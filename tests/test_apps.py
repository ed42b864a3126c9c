"""PFDN in ComfyUI and chaiNNer's ONNX route: ComfyUI's stock loader after the custom node's import alone (its
loading and upscaling sequence as its code does them), and chaiNNer's onnxruntime (the 1.17.1 it pins) with its scale
probe. NCNN files, with Upscayl's own binary and chaiNNer's NCNN build, are tests/test_ncnn.py's."""
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

from conftest import ENV, ROOT, cli, lr_photo, released_and_random_scales
from pfdn_arch.cli.main import main
from pfdn_arch.files.checkpoints import build_from_checkpoint
from tools import pip_target

NODE = os.path.join(ROOT, 'pfdn_arch', 'comfyui_node')


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """The released weights and a random x2 and x3 PFDN, exported as .pth and .safetensors and, for the released
    weights, ONNX."""
    out = tmp_path_factory.mktemp('exported')
    files = released_and_random_scales(out)
    for scale, src in files.items():
        formats = ['pth', 'safetensors'] + (['onnx'] if scale == 4 else [])
        args = ['export', '--weights', src, '--out', out, '--name', f'pfdn_x{scale}', '--formats', *formats]
        assert main([str(a) for a in args]) == 0
    return out, files


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
    net, _ = build_from_checkpoint(files[4])
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
    # linked, in a Python that lacks torch: the package is found, and what is missing is named, not pfdn
    r = subprocess.run([sys.executable, '-S', '-c', f'import runpy; runpy.run_path({str(link / "__init__.py")!r})'],
                       capture_output=True, text=True, env=dict(ENV, PYTHONPATH=''), cwd=tmp_path)
    assert r.returncode != 0 and 'found the pfdn package but not torch' in r.stderr, r.stderr[-500:]
    assert 'pip install torch' in r.stderr and 'needs the pfdn package' not in r.stderr


# ------------------------------------------------------------------------------------------------------ chaiNNer
CHAINNER_ORT = 'onnxruntime==1.17.1'  # the onnxruntime chaiNNer pins (packages/chaiNNer_onnx/__init__.py)
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
    target = Path(pip_target(CHAINNER_ORT, 'numpy<2', deps=True))
    work = tmp_path_factory.mktemp('ort117')
    image = lr_photo(size=(48, 60))
    x = np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)).astype(np.float32)[None] / 255
    np.save(work / 'x.npy', x)
    env = dict(os.environ, PYTHONPATH=str(target))
    r = subprocess.run([sys.executable, '-s', '-c', PROBE, str(out / 'pfdn_x4.onnx'), CHAINNER_ORT.split('==')[1],
                        str(work / 'x.npy'), str(work / 'y.npy')], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split('\n')[-2] == '[4.0]'
    net, _ = build_from_checkpoint(files[4])
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert np.abs(np.load(work / 'y.npy') - ref).max() <= 1e-4
