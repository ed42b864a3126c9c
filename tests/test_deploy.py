"""Profile, inference, export and the fast inference path."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import ROOT, randomized, run_cli
from pfdn_arch import PFDN
from pfdn_arch.checkpoint import build_pfdn_from_checkpoint
from pfdn_arch.data.samples import sample_image
from pfdn_arch.evaluate import evaluate_folder, make_lr, to_tensor
from pfdn_arch.fast import FastPFDN, fast_pfdn
from pfdn_arch.infer import Upscaler, resolve_device_dtype
from pfdn_arch.profile import count_ops


@pytest.fixture(scope='module')
def released():
    path = os.path.join(ROOT, '..', 'shared', 'weights', 'team08_PFDN.pth')
    from conftest import need_shared
    return build_pfdn_from_checkpoint(need_shared(path))[0].eval()


def real_lr(name='astronaut.png', size=None):
    hr = sample_image(name)
    _, lr = make_lr(hr, 4)
    x = to_tensor(lr.astype(np.float32) / 255.0)
    return x if size is None else x[..., :size[0], :size[1]]


def test_profile_counts_of_the_released_model(released):
    r = count_ops(released, torch.rand(1, 3, 256, 256))
    assert r['params'] == 272_224 and r['convs'] == 35
    assert round(r['macs'] / 1e9, 2) == 16.76 and round(r['conv_macs'] / 1e9, 3) == 16.724
    assert round(r['activations'] / 1e6, 2) == 65.10


def test_profile_cli_table_and_cuda_fallback_error():
    r = run_cli('profile', '--size', '64', '64', '--runs', '2', '--warmup', '1')
    assert r.returncode == 0, r.stderr
    assert '| deployed | 272,224 |' in r.stdout and '| training | 972,640 |' in r.stdout
    r = run_cli('profile', '--device', 'cuda')
    if not torch.cuda.is_available():
        assert r.returncode == 2 and r.stderr.strip() == ('error: --device cuda asked for but CUDA is not '
                                                          'available; use --device cpu')


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_fast_path_equals_the_plain_forward(scale):
    net = randomized(PFDN(upscale=scale), seed=scale).eval()
    x = real_lr(size=(40, 47))
    with torch.no_grad():
        ref = net(x)
        fast = FastPFDN(net)  # from the training form: fused inside
        assert (fast(x) - ref).abs().max().item() <= 1e-5
        assert fast(x).is_contiguous() and fast(x).shape == ref.shape


def test_fast_path_on_released_weights_real_images(released):
    fast = fast_pfdn(released)
    for name in ('astronaut.png', 'coffee.png'):
        x = real_lr(name)
        with torch.no_grad():
            assert (fast(x) - released(x)).abs().max().item() <= 1e-4
    with pytest.raises(ValueError, match='>= 15'):
        fast(torch.rand(1, 3, 14, 30))


def test_bf16_fast_path_keeps_set5(released, set5_hr):
    fp32 = evaluate_folder(released, set5_hr)
    bf16 = evaluate_folder(fast_pfdn(released, torch.bfloat16), set5_hr)
    assert abs(bf16['psnr'] - fp32['psnr']) <= 0.02, (fp32, bf16)


def test_hardware_options_fall_back_with_a_message():
    notes = []
    if not torch.cuda.is_available():
        assert resolve_device_dtype('cuda', 'fp16', notes.append) == (torch.device('cpu'), 'fp32')
        assert any('CUDA is not available' in n for n in notes) and any('fp16 needs CUDA' in n for n in notes)
    notes.clear()
    assert resolve_device_dtype('cpu', 'fp16', notes.append) == (torch.device('cpu'), 'fp32')
    assert notes == ['note: fp16 needs CUDA (CPU fp16 convolutions are slow and inexact); using fp32']


def test_tiled_inference_blends_close_to_whole_image(released):
    x = real_lr('coffee.png')  # 100 x 150 LR
    whole = Upscaler(released)(x)
    tiled = Upscaler(released, tile=48, tile_overlap=16)(x)
    mse = ((whole - tiled) ** 2).mean().item()
    assert tiled.shape == whole.shape and 10 * np.log10(1 / mse) > 40  # ESA pools per tile: close, not equal
    with pytest.raises(ValueError, match='at least 15'):
        Upscaler(released, tile=8)


def test_infer_cli_formats_layouts_and_failures(tmp_path, weights):
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    img = sample_image('chelsea.png')[:60, :70]
    for name in ('a.png', 'b.jpg', 'c.webp', 'd.bmp'):
        cv2.imwrite(str(src / name), img)
    cv2.imwrite(str(src / 'gray.png'), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    alpha = np.tile(np.linspace(0, 255, 70, dtype=np.uint8), (60, 1))
    cv2.imwrite(str(src / 'rgba.png'), np.dstack([img, alpha]))
    cv2.imwrite(str(src / 'deep.tiff'), img.astype(np.uint16) * 257)
    (src / 'broken.png').write_bytes(b'not an image')
    r = run_cli('infer', '-i', str(src), '-o', str(out), '--weights', weights, '--tile', '40')
    assert r.returncode == 1  # one input failed
    assert 'error: ' + str(src / 'broken.png') + ': unreadable or corrupt image' in r.stderr
    assert '7 upscaled x4' in r.stdout
    shapes = {p: cv2.imread(str(out / p), cv2.IMREAD_UNCHANGED) for p in os.listdir(out)}
    assert shapes['a.png'].shape == (240, 280, 3) and shapes['gray.png'].shape == (240, 280)
    assert shapes['rgba.png'].shape == (240, 280, 4) and shapes['deep.tiff'].dtype == np.uint16
    assert abs(int(shapes['rgba.png'][100, -1, 3]) - 255) <= 3 and shapes['rgba.png'][100, 0, 3] <= 3
    # 16-bit: same picture as the 8-bit result, at 16-bit precision
    assert np.abs(shapes['deep.tiff'].astype(np.float64) / 257 - shapes['a.png']).mean() < 1.0

    before = os.path.getmtime(out / 'a.png')
    r = run_cli('infer', '-i', str(src / 'a.png'), '-o', str(out), '--weights', weights)
    assert r.returncode == 0 and 'skipped because the output exists' in r.stdout
    assert os.path.getmtime(out / 'a.png') == before
    r = run_cli('infer', '-i', str(src / 'a.png'), '-o', str(out), '--weights', weights, '--force', '--dtype', 'bf16')
    assert r.returncode == 0 and os.path.getmtime(out / 'a.png') != before
    r = run_cli('infer', '-i', str(tmp_path / 'nothing'), '-o', str(out), '--weights', weights)
    assert r.returncode == 2 and r.stderr.strip() == f"error: input not found: {tmp_path / 'nothing'}"


def test_export_all_formats_load_elsewhere(tmp_path, weights):
    r = run_cli('export', '--weights', weights, '--out', str(tmp_path))
    assert r.returncode == 0, r.stderr
    released = torch.load(weights, weights_only=True)
    pth = torch.load(tmp_path / 'pfdn_x4.pth', weights_only=True)
    assert list(pth) == list(released) and all(torch.equal(pth[k], released[k]) for k in released)
    from safetensors.torch import load_file
    st = load_file(str(tmp_path / 'pfdn_x4.safetensors'))
    assert all(torch.equal(st[k], released[k]) for k in released)
    assert 'onnxruntime vs PyTorch max |diff|' in r.stdout
    import onnxruntime as ort
    sess = ort.InferenceSession(str(tmp_path / 'pfdn_x4.onnx'), providers=['CPUExecutionProvider'])
    x = real_lr(size=(31, 45))
    net = build_pfdn_from_checkpoint(weights)[0].eval()
    with torch.no_grad():
        assert np.abs(sess.run(None, {'lr': x.numpy()})[0] - net(x).numpy()).max() < 1e-4
    # refuses to overwrite
    r = run_cli('export', '--weights', weights, '--out', str(tmp_path))
    assert r.returncode == 2 and 'exists; pass --force' in r.stderr
    # spandrel (chaiNNer/ComfyUI) loads the exported files in a fresh process once PFDN is registered
    code = ('import sys, torch, spandrel, pfdn_arch.spandrel_arch as s; s.register();'
            'm = spandrel.ModelLoader().load_from_file(sys.argv[1]);'
            'print(m.architecture.id, m.scale, m.input_channels, m.size_requirements.minimum,'
            ' sum(p.numel() for p in m.model.parameters()))')
    for f in ('pfdn_x4.pth', 'pfdn_x4.safetensors', weights):
        out = subprocess.run([sys.executable, '-c', code, str(tmp_path / f)], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
        assert out.stdout.split() == ['PFDN', '4', '3', '15', '272224'], out.stderr[-1000:]
