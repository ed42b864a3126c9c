"""Profile, inference backends, inference and export."""
import os
import re
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import torch

from conftest import cli, ENV, infer, one_error, randomized, ROOT, tiny, val_set  # noqa: F401 (a fixture)
from pfdn_arch import errors, PFDN
from pfdn_arch.archs.pfdn.convert import reparameterized as pfdn_reparameterized
from pfdn_arch.deploy.runtime import choose as backends
from pfdn_arch.deploy.runtime import choose
from pfdn_arch.deploy.runtime.choose import make_runner, resolve
from pfdn_arch.deploy.runtime.efficiency import count_ops
from pfdn_arch.deploy.runtime.upscaler import Upscaler
from pfdn_arch.errors import OptionsError
from pfdn_arch.evaluation.protocol import bicubic_lr, evaluate_folder, to_tensor
from pfdn_arch.files.checkpoints import build_from_checkpoint
from pfdn_arch.layout.samples import sample_image


@pytest.fixture(scope='module')
def released():
    path = os.path.join(ROOT, '..', 'shared', 'weights', 'team08_PFDN.pth')
    from conftest import need_shared
    return build_from_checkpoint(need_shared(path))[0].eval()


def real_lr(name='astronaut.png', size=None):
    hr = sample_image(name)
    _, lr = bicubic_lr(hr, 4)
    x = to_tensor(lr.astype(np.float32) / 255.0)
    return x if size is None else x[..., :size[0], :size[1]]


def test_profile_counts_of_the_released_model(released):
    r = count_ops(released, torch.rand(1, 3, 256, 256))
    assert r['params'] == 272_224 and r['convs'] == 35
    assert round(r['macs'] / 1e9, 2) == 16.76 and round(r['conv_macs'] / 1e9, 3) == 16.724
    assert round(r['activations'] / 1e6, 2) == 65.10


def test_profile_cli_table_ntire_protocol_and_cuda_fallback_error(tmp_path, capsys):
    code, out, _ = cli(['profile', '--size', 64, 64, '--runs', 2, '--warmup', 1], capsys)
    assert code == 0
    assert '| deployed | 272,224 |' in out and '| training | 972,640 |' in out
    backend, _, dtype = resolve('auto', 'cpu', 'auto')
    assert f"| {backend} ({dtype}, cpu) |" in out  # the deployed form runs on auto's backend and precision
    lr = tmp_path / 'lr'
    lr.mkdir()
    for name in ('chelsea.png', 'coffee.png'):
        cv2.imwrite(str(lr / name), sample_image(name)[:40, :48])
    code, out, _ = cli(['profile', '--protocol', 'ntire', '--input', lr, '--backend', 'torch'], capsys)
    assert code == 0
    assert 'NTIRE Efficient SR protocol on' in out and '(2 images)' in out
    assert re.search(r'\| NTIRE protocol: torch \(fp32, cpu\) \| \d+\.\d\d \| - \|', out)
    assert re.search(r'\| torch \(fp32, cpu\), after one untimed pass \| \d+\.\d\d \| - \|', out)
    if not torch.cuda.is_available():
        code, _, err = cli(['profile', '--device', 'cuda'], capsys)
        assert code == 2 and len(err) == 1 and err[0].startswith('error: --device: ') and 'CUDA' in err[0]


INSTALLED = [b for b in backends.BACKENDS[1:] if backends.installed(b)]


def need_backend(backend):
    """CI installs every runtime (the test extra); elsewhere a missing one is a skip that says so."""
    if not backends.installed(backend):
        if os.environ.get('CI'):
            raise RuntimeError(f'{backend} is not installed; CI installs pfdn[test]')
        pytest.skip(f"the {backend} runtime is not installed: pip install -e '.[fast]'")


@pytest.mark.parametrize('backend', backends.BACKENDS[1:])
def test_every_backend_agrees_with_the_plain_forward(backend, released):
    need_backend(backend)
    if backend == 'compile':  # compiling the released net on 2 cores takes a minute: a smaller net, same code
        released = randomized(PFDN(num_block=1, num_feat=16, num_partial_feat=8, esa_channels=8, deploy=True)).eval()
    runner = make_runner(released, backend, 'cpu', 'fp32', warn=pytest.fail)  # no fallback, no note
    assert runner.name == backend and runner.dtype == 'fp32'
    cases = (('coffee.png', (37, 51)),) if backend == 'compile' else (('astronaut.png', None), ('coffee.png', (37, 51)))
    for name, size in cases:  # compile: one size, one compilation
        x = real_lr(name, size)
        with torch.no_grad():
            assert (runner(x).cpu() - released(x)).abs().max().item() <= 1e-4, (backend, name)
    with pytest.raises(ValueError, match='at least 15x15'):
        runner(torch.rand(1, 3, 14, 30))


@pytest.mark.parametrize('scale', [2, 3])
def test_library_backends_run_other_scales_and_the_fused_training_form(scale):
    trained = randomized(PFDN(upscale=scale), seed=scale).eval()
    deployed = pfdn_reparameterized(trained)
    x = real_lr(size=(40, 47))
    with torch.no_grad():
        ref = trained(x)
    for backend in ('torch', 'openvino', 'onnxruntime'):
        need_backend(backend)
        assert (make_runner(deployed, backend)(x).cpu() - ref).abs().max().item() <= 1e-4, backend
    with pytest.raises(ValueError, match='deployed form'):
        make_runner(trained)


def test_auto_picks_an_installed_backend_and_missing_runtimes_fall_back_with_a_note(monkeypatch):
    notes = []
    backend, device, dtype = resolve('auto', 'cpu', 'fp32', notes.append)
    assert backend in INSTALLED and backend == next(b for b in backends.AUTO_ORDER['cpu'] if b in INSTALLED)
    assert notes == [] and device.type == 'cpu' and dtype == 'fp32'
    monkeypatch.setattr(errors, 'installed', lambda module: False)  # neither OpenVINO nor ONNX Runtime
    assert resolve('auto', 'cpu', 'fp32', notes.append)[0] == 'torch' and notes == []
    assert resolve('openvino', 'cpu', 'fp32', notes.append)[0] == 'torch'
    assert notes == ["note: the openvino backend is not installed (pip install 'pfdn[fast]'); using torch"]
    with pytest.raises(OptionsError) as err:
        resolve('tensorrt')
    assert err.value.path == 'backend' and 'tensorrt' in err.value.reason
    with pytest.raises(OptionsError) as err:
        resolve('torch', 'banana')
    assert err.value.path == 'device' and 'banana' in err.value.reason


def test_bf16_keeps_set5_or_falls_back_to_fp32_with_a_note(released, set5_hr):
    """Where the CPU has bf16 it runs and keeps Set5 within 0.02 dB; where it has not, the note says so and what
    runs is exactly fp32."""
    notes = []
    runner = make_runner(released, 'auto', 'cpu', 'bf16', warn=notes.append)
    fp32 = evaluate_folder(released, set5_hr)
    asked = evaluate_folder(runner, set5_hr)
    if runner.dtype == 'bf16':
        assert notes == [] and abs(asked['psnr'] - fp32['psnr']) <= 0.02, (runner, fp32, asked)
    else:
        assert runner.dtype == 'fp32' and len(notes) == 1 and 'bf16' in notes[0]
        assert abs(asked['psnr'] - fp32['psnr']) <= 1e-4, (runner, fp32, asked)


def native_fast_precision(device_type='cpu'):
    """The precision --dtype auto should pick here: the first of AUTO_DTYPES some installed backend runs natively."""
    device = torch.device(device_type)
    for dtype in backends.AUTO_DTYPES[device_type]:
        if any(dtype in backends.precisions(b, device) for b in backends.AUTO_ORDER[device_type] if
               backends.installed(b) and backends.RUNNERS[b].runs_on(device) and
               dtype in backends.RUNNERS[b].costs.get(device_type, {})):
            return dtype
    return 'fp32'


def test_auto_precision_is_the_fastest_native_one_that_keeps_set5_within_001_db(released, set5_hr):
    backend, _, dtype = resolve('auto', 'cpu', 'auto', pytest.fail)  # no note: nothing falls back
    assert dtype == native_fast_precision()  # bf16 on AMX / AVX512-BF16 CPUs, else fp32
    runner = make_runner(released, 'auto', 'cpu', 'auto', warn=pytest.fail)
    assert (runner.name, runner.dtype) == (backend, dtype)
    with torch.no_grad():
        exact = evaluate_folder(released, set5_hr)['psnr']
    assert abs(evaluate_folder(runner, set5_hr)['psnr'] - exact) <= 0.01
    # an explicit precision is what runs, auto or not
    assert resolve('auto', 'cpu', 'fp32', pytest.fail)[2] == 'fp32'
    assert resolve('torch', 'cpu', 'auto', pytest.fail)[:2] == ('torch', choose.Device('cpu'))


@pytest.mark.parametrize('work', [[(32, 32)], [(40 + 8 * (i % 9), 64) for i in range(30)], [(256, 256)] * 200,
                                  [(720, 1280)] * 3])
def test_auto_never_picks_a_pair_slower_than_another_allowed_one(work):
    """Among every (backend, precision) pair --dtype auto may take here, the cost model's choice costs least."""
    workload = backends.Workload.of(work)
    backend, device, dtype = resolve('auto', 'cpu', 'auto', pytest.fail, workload)
    allowed = [(b, p) for b in backends.AUTO_ORDER['cpu'] if backends.installed(b)
               for p in backends.AUTO_DTYPES['cpu'] if p in backends.precisions(b, device)
               and p in backends.RUNNERS[b].costs['cpu']]
    assert (backend, dtype) in allowed
    assert workload.seconds(backend, 'cpu', dtype) == min(workload.seconds(b, 'cpu', p) for b, p in allowed)


def test_infer_says_once_what_auto_chose_and_fp32_is_exact(released, weights, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / 'a.png'), sample_image('coffee.png')[:48, :64])
    code, _, err = cli(['infer', '-i', tmp_path / 'a.png', '-o', tmp_path / 'auto', '--weights', weights], capsys)
    said = [line for line in err if line.startswith('backend: ')]
    backend, _, dtype = resolve('auto', 'cpu', 'auto', pytest.fail, backends.Workload.of([(48, 64)]))
    assert code == 0 and len(said) == 1
    if dtype == 'fp32':
        assert said[0].startswith(f'backend: {backend} fp32 (auto: ')  # its reason: test_autos_reason_...
    else:
        assert said[0] == f'backend: {backend} {dtype} (auto; --dtype fp32 for exact)'
    code, _, err = cli(['infer', '-i', tmp_path / 'a.png', '-o', tmp_path / 'exact', '--weights', weights,
                        '--dtype', 'fp32', '--backend', 'torch'], capsys)
    assert code == 0 and 'backend: torch (fp32, cpu)' in err
    x = torch.from_numpy(np.ascontiguousarray(sample_image('coffee.png')[:48, :64, ::-1].transpose(2, 0, 1))
                         .astype(np.float32) / 255)[None]
    with torch.no_grad():
        ref = (released(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round()
    assert np.abs(cv2.imread(str(tmp_path / 'exact' / 'a.png')).astype(float) - ref).max() <= 1


def test_batches_and_batched_tiles_give_the_single_run_outputs(released):
    runner = make_runner(released, 'torch')
    imgs = [sample_image(n)[:60, :70] for n in ('astronaut.png', 'coffee.png', 'chelsea.png')]
    one = Upscaler(runner)
    three = Upscaler(runner, batch=3)
    for a, b in zip(three.upscale_images(imgs), [one.upscale_image(i) for i in imgs]):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    x = real_lr('coffee.png')
    tiled1 = Upscaler(runner, tile=48, tile_overlap=16)(x)
    tiled4 = Upscaler(runner, tile=48, tile_overlap=16, batch=4)(x)
    assert (tiled1 - tiled4).abs().max().item() <= 1e-5


def test_tiled_inference_blends_close_to_whole_image(released):
    x = real_lr('coffee.png')  # 100 x 150 LR
    runner = make_runner(released, 'torch')
    whole = Upscaler(runner)(x)
    tiled = Upscaler(runner, tile=48, tile_overlap=16)(x)
    mse = ((whole - tiled) ** 2).mean().item()
    assert tiled.shape == whole.shape and 10 * np.log10(1 / mse) > 40  # ESA pools per tile: close, not equal
    with pytest.raises(OptionsError) as err:
        Upscaler(runner, tile=8)
    assert err.value.path == 'tile' and 'at least 15' in err.value.reason


def test_infer_cli_formats_layouts_and_failures(tmp_path, weights, capsys):
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
    code, stdout, err = cli(['infer', '-i', src, '-o', out, '--weights', weights, '--tile', 40], capsys)
    assert code == 1  # one input failed
    assert err[-1] == 'error: ' + str(src / 'broken.png') + ': unreadable or corrupt image'
    assert '7 upscaled x4' in stdout
    shapes = {p: cv2.imread(str(out / p), cv2.IMREAD_UNCHANGED) for p in os.listdir(out)}
    assert shapes['a.png'].shape == (240, 280, 3) and shapes['gray.png'].shape == (240, 280)
    assert shapes['rgba.png'].shape == (240, 280, 4) and shapes['deep.tiff'].dtype == np.uint16
    assert abs(int(shapes['rgba.png'][100, -1, 3]) - 255) <= 3 and shapes['rgba.png'][100, 0, 3] <= 3
    # 16-bit: same picture as the 8-bit result, at 16-bit precision
    assert np.abs(shapes['deep.tiff'].astype(np.float64) / 257 - shapes['a.png']).mean() < 1.0

    before = os.path.getmtime(out / 'a.png')
    code, stdout, _ = cli(['infer', '-i', src / 'a.png', '-o', out, '--weights', weights, '--tile', 40], capsys)
    assert code == 0 and '0 upscaled' in stdout and '1 kept' in stdout
    assert os.path.getmtime(out / 'a.png') == before
    code, _, err = cli(['infer', '-i', src / 'a.png', '-o', out, '--weights', weights, '--force', '--dtype', 'bf16',
                        '--backend', 'torch', '--batch', 2], capsys)
    assert code == 0 and os.path.getmtime(out / 'a.png') != before
    assert err[-1] == 'backend: torch (bf16, cpu)' or 'bf16 is not supported' in err[0]
    code, _, err = cli(['infer', '-i', tmp_path / 'nothing', '-o', out, '--weights', weights], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'nothing'}: ")


def test_a_result_is_kept_only_where_the_same_work_made_it(tmp_path, tiny, capsys):
    from conftest import tiny_state
    photo, out = tmp_path / 'my_photo.jpg', tmp_path / 'my_photo_x4.png'
    cv2.imwrite(str(photo), sample_image('coffee.png')[:48, :64])
    mine = tmp_path / 'my_pfdn.pth'
    torch.save(tiny_state(seed=1), mine)

    def run(*extra, weights=tiny):
        return cli(['infer', '-i', photo, '-o', out, '--weights', weights, '--backend', 'torch', *extra], capsys)

    code, stdout, err = run()
    first = out.read_bytes()
    assert code == 0 and '1 upscaled' in stdout and f'weights: {tiny} (not the released file)' in err
    code, stdout, _ = run()
    assert code == 0 and '0 upscaled' in stdout and '1 kept' in stdout and out.read_bytes() == first
    code, stdout, err = run(weights=mine)  # other weights: not the same work, made again and said so
    assert code == 0 and '1 upscaled' in stdout and 'already made' not in stdout
    assert f'weights: {mine} (not the released file)' in err and any('made again' in line for line in err)
    assert out.read_bytes() != first
    second = out.read_bytes()
    one_error(*run('--tile', 16, weights=mine)[::2], '--tile-overlap', 'must be in 0..7 for tile 16')
    code, stdout, _ = run('--tile', 48, weights=mine)  # a setting that changes pixels
    assert code == 0 and '1 upscaled' in stdout
    code, stdout, _ = run('--tile', 48, weights=mine)
    assert code == 0 and '1 kept' in stdout
    cv2.imwrite(str(photo), sample_image('coffee.png')[8:56, :64])  # the input changed
    code, stdout, _ = run(weights=mine)
    assert code == 0 and '1 upscaled' in stdout and out.read_bytes() not in (first, second)
    cv2.imwrite(str(out), sample_image('astronaut.png'))  # a file this command did not make: left alone
    users = out.read_bytes()
    one_error(*run(weights=mine)[::2], str(out), '--force', status=1)
    assert out.read_bytes() == users
    # an input that is not there is said first, whatever the output
    one_error(*cli(['infer', '-i', tmp_path / 'my_phot.jpg', '-o', tmp_path / 'out.png'], capsys)[::2],
              f"{tmp_path / 'my_phot.jpg'}: not found")


def test_export_all_formats_load_elsewhere(tmp_path, weights, capsys):
    code, stdout, err = cli(['export', '--weights', weights, '--out', tmp_path], capsys)
    assert code == 0, err
    released = torch.load(weights, weights_only=True)
    pth = torch.load(tmp_path / 'pfdn_x4.pth', weights_only=True)
    assert list(pth) == list(released) and all(torch.equal(pth[k], released[k]) for k in released)
    from safetensors.torch import load_file
    st = load_file(str(tmp_path / 'pfdn_x4.safetensors'))
    assert all(torch.equal(st[k], released[k]) for k in released)
    assert 'onnxruntime vs PyTorch max |diff|' in stdout
    import onnxruntime as ort
    sess = ort.InferenceSession(str(tmp_path / 'pfdn_x4.onnx'), providers=['CPUExecutionProvider'])
    x = real_lr(size=(31, 45))
    net = build_from_checkpoint(weights)[0].eval()
    with torch.no_grad():
        assert np.abs(sess.run(None, {'lr': x.numpy()})[0] - net(x).numpy()).max() < 1e-4
    # the same export again: nothing to do, every file kept; other weights: refused, nothing replaced
    code, stdout, err = cli(['export', '--weights', weights, '--out', tmp_path], capsys)
    assert code == 0 and stdout.count('kept, written by an earlier run of this export') == 3, (stdout, err)
    other = tmp_path / 'other.pth'
    torch.save({k: v * 0.5 for k, v in released.items()}, other)
    code, _, err = cli(['export', '--weights', other, '--out', tmp_path], capsys)
    assert code == 2 and err[-1].startswith(f"error: {tmp_path / 'pfdn_x4.pth'}: ") and '--force' in err[-1]
    # spandrel (chaiNNer/ComfyUI) loads the exported files in a fresh process once PFDN is registered
    script = ('import sys, torch, spandrel, pfdn_arch.deploy.export.spandrel_arch as s; s.register()\n'
              'for path in sys.argv[1:]:\n'
              '    m = spandrel.ModelLoader().load_from_file(path)\n'
              '    print(m.architecture.id, m.scale, m.input_channels, m.size_requirements.minimum,'
              ' sum(p.numel() for p in m.model.parameters()))')
    files = [str(tmp_path / 'pfdn_x4.pth'), str(tmp_path / 'pfdn_x4.safetensors'), weights]
    r = subprocess.run([sys.executable, '-c', script, *files], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.stdout.split('\n')[:3] == ['PFDN 4 3 15 272224'] * 3, r.stderr[-1000:]


def visible(folder):
    """The files a user sees in ``folder`` (the export's record and lock are hidden ones)."""
    return [n for n in os.listdir(folder) if not n.startswith('.')]


@pytest.mark.parametrize('formats, files', [
    (['ncnn'], {'4x-PFDN.param', '4x-PFDN.bin'}),
    (['onnx'], {'pfdn_x4.onnx'}),
    (['safetensors', 'pth'], {'pfdn_x4.pth', 'pfdn_x4.safetensors'}),
])
def test_export_writes_the_formats_named_and_nothing_else(tmp_path, tiny, capsys, formats, files):
    """``--formats`` takes any subset of the formats, NCNN and int8 included: an NCNN-only export writes the NCNN
    pair and no other file (its record of the unfinished export gone too)."""
    code, stdout, err = cli(['export', '--weights', tiny, '--out', tmp_path / 'out', '--formats', *formats], capsys)
    assert code == 0, err
    assert set(visible(tmp_path / 'out')) == files  # beside them only the export's own record and lock, hidden
    assert len(stdout.splitlines()) == len(formats)  # one line per format written


def test_the_old_export_flags_add_their_format(tmp_path, tiny, capsys):
    code, _, err = cli(['export', '--weights', tiny, '--out', tmp_path / 'out', '--formats', 'pth', '--ncnn'], capsys)
    assert code == 0, err
    assert set(visible(tmp_path / 'out')) == {'pfdn_x4.pth', '4x-PFDN.param', '4x-PFDN.bin'}
    one_error(*cli(['export', '--weights', tiny, '--out', tmp_path / 'o2', '--formats', 'pth', '--ncnn-fp32'],
                   capsys)[::2], '--ncnn-fp32', 'ncnn')


def test_a_stopped_export_continues_and_still_refuses_what_it_did_not_write(tmp_path, weights, capsys, monkeypatch):
    """Ctrl-C after the .pth: the same command again keeps the .pth it wrote, writes the rest; a rerun of the
    finished export keeps everything (its record stays); other weights, a file edited by hand or one the export
    never wrote are refused naming --force, and left as they are."""
    import pfdn_arch.deploy.export.formats as formats
    out, args = tmp_path / 'out', ['export', '--weights', weights, '--out', tmp_path / 'out', '--formats', 'pth',
                                   'safetensors']

    def stop(*_, **__):
        raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(formats, 'save_safetensors', stop)
        code, _, err = cli(args, capsys)
    assert code == 130 and (out / 'pfdn_x4.pth').is_file() and not (out / 'pfdn_x4.safetensors').exists()
    record = out / '.pfdn_x4.pfdn-export.json'
    assert record.is_file()
    # another checkpoint: the stopped run's files are not its own
    other = tmp_path / 'other.pth'
    sd = torch.load(weights, weights_only=True)
    torch.save({k: v + 1e-3 for k, v in sd.items()}, other)
    code, _, err = cli(['export', '--weights', other, '--out', out, '--formats', 'pth'], capsys)
    assert code == 2 and err[-1].startswith(f"error: {out / 'pfdn_x4.pth'}: ") and '--force' in err[-1]
    code, stdout, err = cli(args, capsys)
    assert code == 0, err
    assert 'kept, written by an earlier run of this export' in stdout and (out / 'pfdn_x4.safetensors').is_file()
    code, stdout, err = cli(args, capsys)  # the whole export again: nothing to do
    assert code == 0 and stdout.count('kept, written by an earlier run') == 2, (stdout, err)
    # a file of the export edited by hand: refused, left as it is; --force replaces it
    (out / 'pfdn_x4.pth').write_bytes(b'changed by hand')
    code, _, err = cli(args, capsys)
    assert code == 2 and err[-1].startswith(f"error: {out / 'pfdn_x4.pth'}: ") and '--force' in err[-1]
    assert (out / 'pfdn_x4.pth').read_bytes() == b'changed by hand'
    assert cli(args + ['--force'], capsys)[0] == 0
    assert torch.load(out / 'pfdn_x4.pth', weights_only=True).keys() == sd.keys()
    # a user's file the export never wrote is refused even with a record beside it
    (out / 'mine.onnx').write_bytes(b'mine')
    code, _, err = cli(['export', '--weights', weights, '--out', out, '--name', 'mine', '--formats', 'onnx'], capsys)
    assert code == 2 and (out / 'mine.onnx').read_bytes() == b'mine'


@pytest.mark.parametrize('placed', ['after the .pth, at the .pth', 'before the ONNX step, at the .onnx'])
def test_a_resumed_export_never_takes_a_file_put_where_it_writes(tmp_path, tiny, capsys, monkeypatch, placed):
    """Stopped after its first format, a user's file put at one of its names (one it wrote, or one it has yet to
    write): the rerun refuses it in one line naming --force, and the file stays the user's."""
    import pfdn_arch.deploy.export.formats as formats
    out = tmp_path / 'out'
    args = ['export', '--weights', tiny, '--out', out, '--formats', 'pth', 'onnx']
    with monkeypatch.context() as m:
        m.setattr(formats, 'export_onnx', lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        assert cli(args, capsys)[0] == 130
    mine = out / ('pfdn_x4.pth' if 'pth' in placed.split(',')[1] else 'pfdn_x4.onnx')
    mine.write_bytes(b'my own file')
    code, _, err = cli(args, capsys)
    one_error(code, err, str(mine), 'not what this export wrote', '--force')
    assert mine.read_bytes() == b'my own file'


@pytest.mark.parametrize('record', ['{"key": {}, "written": []}', '{"key": 1}', '[1, 2]', 'not json',
                                    '{"key": {}, "written": {"pth": {"pfdn_x4.pth": {"size": "1"}}}}'])
def test_a_malformed_export_record_is_no_record(tmp_path, tiny, capsys, record):
    out = tmp_path / 'out'
    out.mkdir()
    (out / '.pfdn_x4.pfdn-export.json').write_text(record)
    code, _, err = cli(['export', '--weights', tiny, '--out', out, '--formats', 'pth'], capsys)
    assert code == 0, err
    assert (out / 'pfdn_x4.pth').is_file()


def test_one_export_into_a_folder_at_a_time(tmp_path, tiny, capsys):
    from pfdn_arch.deploy.export.steps import LOCK
    from pfdn_arch.files.locks import owned
    out = tmp_path / 'out'
    with owned(str(out), LOCK):  # another export holds the folder
        code, _, err = cli(['export', '--weights', tiny, '--out', out, '--formats', 'pth'], capsys)
    one_error(code, err, 'in use by another run')
    assert not (out / 'pfdn_x4.pth').exists()


def test_the_deployment_side_needs_no_basicsr(tmp_path, weights):
    """A process where basicsr cannot be imported (as after `pip install pfdn` without the train extra): the
    released weights load through pfdn_arch.archs, and infer, export and reparam run."""
    script = textwrap.dedent('''
        import sys
        sys.modules['basicsr'] = None  # any import of basicsr fails, as if it were not installed
        import cv2, numpy as np, torch
        import pfdn_arch.archs
        from pfdn_arch.files.checkpoints import build_from_checkpoint
        from pfdn_arch.cli.main import main
        weights, out = sys.argv[1], sys.argv[2]
        net, _ = build_from_checkpoint(weights)
        print('forward', tuple(net(torch.rand(1, 3, 20, 20)).shape))
        cv2.imwrite(out + '/in.png', (np.random.default_rng(0).random((24, 30, 3)) * 255).astype(np.uint8))
        torch.save({'params': pfdn_arch.archs.PFDN().state_dict()}, out + '/train.pth')
        print('infer', main(['infer', '-i', out + '/in.png', '-o', out + '/sr', '--weights', weights]))
        print('export', main(['export', '--weights', weights, '--out', out + '/exported']))
        print('reparam', main(['reparam', '--in', out + '/train.pth', '--out', out + '/deploy.pth']))
        print('loaded', sorted(m for m in sys.modules if m.split('.')[0] == 'basicsr' and sys.modules[m] is not None))
    ''')
    r = subprocess.run([sys.executable, '-c', script, weights, str(tmp_path)], capture_output=True, text=True,
                       env=dict(ENV, PFDN_BASICSR_HOOK='0'), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert 'forward (1, 3, 80, 80)' in lines and 'infer 0' in lines and 'export 0' in lines and 'reparam 0' in lines
    assert lines[-1] == 'loaded []'
    assert cv2.imread(str(tmp_path / 'sr' / 'in.png')).shape == (96, 120, 3)


# -------------------------------------------------------------------------- the work users run: mixed sizes, reuse
def test_auto_picks_by_workload_and_never_the_slower_choice():
    from pfdn_arch.deploy.runtime.choose import Workload
    need_backend('openvino')
    one_small = Workload.of([(32, 32)])
    folder = Workload.of([(170 + 4 * (i % 37), 256) for i in range(100)])  # 100 images of 37 sizes
    validations = Workload.of([(128, 128)] * 5, passes=100, refresh=True)  # weights change between them
    assert resolve('auto', 'cpu', 'fp32', pytest.fail, one_small)[0] == 'torch'  # a build would cost more
    assert resolve('auto', 'cpu', 'fp32', pytest.fail, folder)[0] == 'openvino'
    assert resolve('auto', 'cpu', 'fp32', pytest.fail, validations)[0] == 'torch'  # no rebuild per validation
    for work in (one_small, folder, validations):
        chosen = resolve('auto', 'cpu', 'fp32', pytest.fail, work)[0]
        assert work.seconds(chosen, 'cpu') <= work.seconds('torch', 'cpu')


@pytest.mark.parametrize('backend', ['openvino', 'compile'])
def test_mixed_sizes_compile_nothing_new_for_a_seen_size_and_match_the_plain_forward(backend):
    need_backend(backend)
    net = randomized(PFDN(num_block=1, num_feat=16, num_partial_feat=8, esa_channels=8, deploy=True)).eval()
    runner = make_runner(net, backend, 'cpu', 'fp32', warn=pytest.fail)
    sizes = [(17, 23), (31, 20), (17, 23), (31, 20)]
    builds = []
    for h, w in sizes:
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h * w))
        with torch.no_grad():
            assert (runner(x).cpu() - net(x)).abs().max().item() <= 1e-4
        builds.append(runner.builds)
    assert builds[2:] == builds[1:2] * 2  # the sizes seen before compiled nothing
    assert builds[-1] == (1 if backend == 'openvino' else 2)  # one dynamic model, or one compilation per size


def test_a_runner_takes_new_weights_without_a_rebuild():
    net = randomized(PFDN(num_block=1, num_feat=16, num_partial_feat=8, esa_channels=8, deploy=True)).eval()
    runner = make_runner(net, 'torch')
    trained = randomized(PFDN(num_block=1, num_feat=16, num_partial_feat=8, esa_channels=8, deploy=True), seed=5)
    runner.refresh(trained.eval())
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        assert (runner(x) - trained(x)).abs().max().item() <= 1e-6 and runner.builds == 0


def test_validations_of_a_training_run_share_one_runner_refreshed_with_the_new_weights(photos, tmp_path):
    from conftest import tiny_model, uint8_batch
    model = tiny_model(tmp_path, datasets={'train': {'name': 'unused', 'type': 'PairedCropDataset'},
                                           'val': dict(val_set(photos))},
                       val={'val_freq': 1, 'save_img': False, 'backend': 'auto',
                            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4}}})
    loader = torch.utils.data.DataLoader(build_val_dataset(model.opt), batch_size=1)
    model.validation(loader, 1, None, False)
    first, runner = dict(model.metric_results), model._runner
    assert runner.name == 'torch'  # auto, for validations whose weights change: no rebuild per validation
    model.feed_data(uint8_batch(0))
    model.optimize_parameters(2)
    model.validation(loader, 2, None, False)
    assert model._runner is runner and runner.builds == 0
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():  # the runner holds the trained weights
        assert (runner(x) - model.deployed_network()(x)).abs().max().item() <= 1e-5
    assert model.metric_results['psnr'] != first['psnr']


def build_val_dataset(opt):
    from basicsr.data import build_dataset
    return build_dataset(opt['datasets']['val'])


def test_streams_give_the_one_at_a_time_results_in_order(tmp_path, weights, capsys):
    """A folder through OpenVINO's streams (decoding ahead, encoding behind): the same files as one image at a
    time, failures reported in input order."""
    need_backend('openvino')
    src = tmp_path / 'in'
    src.mkdir()
    for i, name in enumerate(('chelsea.png', 'coffee.png', 'astronaut.png', 'chelsea.png')):
        cv2.imwrite(str(src / f'{i}.png'), sample_image(name)[:30 + 7 * i, :40 + 5 * i])
    (src / '1b.png').write_bytes(b'broken')
    (src / '3b.png').write_bytes(b'broken too')
    code, _, err = cli(['infer', '-i', src, '-o', tmp_path / 'streams', '--weights', weights, '--backend', 'openvino'],
                       capsys)
    assert code == 1
    assert [line.split(':')[1].strip().rsplit('/', 1)[-1] for line in err if line.startswith('error:')] == [
        '1b.png', '3b.png']
    code, _, _ = cli(['infer', '-i', src / '2.png', '-o', tmp_path / 'single', '--weights', weights, '--backend',
                      'openvino'], capsys)
    assert code == 0
    one = cv2.imread(str(tmp_path / 'single' / '2.png'))
    assert np.abs(cv2.imread(str(tmp_path / 'streams' / '2.png')).astype(int) - one.astype(int)).max() <= 1
    assert sorted(p for p in os.listdir(tmp_path / 'streams') if not p.startswith('.')) == ['0.png', '1.png', '2.png',
                                                                                         '3.png']


def test_openvino_streams_have_run_once_before_threads_share_them(weights):
    """Every stream's request has run a forward on the building thread (its input is the warm-up's): OpenVINO's
    binding deadlocks when two threads make a process's first ``tensor.data`` at once (basicsr infer of a folder
    hung about one run in ten)."""
    need_backend('openvino')
    net, _ = build_from_checkpoint(weights)
    runner = make_runner(net, 'openvino', 'cpu', 'fp32', streams=2, threads=2)
    requests = [runner.requests.get() for _ in range(runner.streams)]
    assert runner.streams == 2
    assert [tuple(r.get_input_tensor(0).shape) for r in requests] == [(1, 3, 15, 15)] * 2
    assert [tuple(r.get_output_tensor(0).shape) for r in requests] == [(1, 3, 60, 60)] * 2


def test_on_a_cpu_pixels_are_made_from_the_runtimes_memory_and_a_called_result_is_the_callers(weights, monkeypatch):
    """On a CPU ``run_images`` makes the pixels within the forward's call (from OpenVINO's request memory, not a
    copy), the same pixels a GPU run makes later from a copied result; and a result ``__call__`` gives survives
    the next forward (OpenVINO reuses a request's output memory)."""
    need_backend('openvino')
    from pfdn_arch.deploy.runtime import upscaler as module

    net, _ = build_from_checkpoint(weights)
    runner = make_runner(net, 'openvino', 'cpu', 'fp32', streams=1, threads=2)
    imgs = [sample_image(n)[:40, :48] for n in ('astronaut.png', 'coffee.png')]
    made, real = [], module.from_network
    monkeypatch.setattr(module, 'from_network', lambda *a: made.append(a) or real(*a))
    beside, deferred = Upscaler(runner, batch=2), Upscaler(runner, batch=2)
    deferred.finish_beside_network = False  # what a GPU runner's Upscaler does
    assert beside.finish_beside_network
    now = beside.run_images(imgs)
    assert len(made) == 2  # made already, beside the network
    later = deferred.run_images(imgs)
    assert len(made) == 2  # not yet: the caller makes them
    for a, b in zip([f() for f in now], [f() for f in later]):
        assert a.shape == (160, 192, 3) and np.array_equal(a, b)
    x = np.random.default_rng(0).random((1, 3, 40, 48), dtype=np.float32)
    first = runner(x)
    kept = first.copy()
    runner(1 - x)  # the same request (one stream) serves the next forward
    assert np.array_equal(first, kept)


def test_basicsr_test_in_streams_scores_as_one_image_at_a_time(set5_hr, weights, tmp_path, capsys, monkeypatch):
    """The test run's validation with the runtime's streams gives BasicSR's own loop's scores, to the last digit."""
    need_backend('openvino')
    import yaml
    monkeypatch.chdir(tmp_path)
    assert cli(['prepare', 'benchmark', '--hr', set5_hr, '--name', 'Set5'], capsys)[0] == 0
    opt = yaml.safe_load(open(os.path.join(ROOT, 'options', 'test_pfdn_x4.yml')))
    del opt['datasets']['test_2']
    opt['path']['pretrain_network_g'] = weights
    tables = {}
    for name, backend in (('streams', 'openvino'), ('loop', 'torch')):
        opt.update(name=name)
        opt['val']['backend'] = backend
        yml = tmp_path / f'{name}.yml'
        yml.write_text(yaml.safe_dump(opt))
        assert cli(['test', '-opt', yml], capsys)[0] == 0
        tables[name] = (tmp_path / 'results' / name / 'results.md').read_text().splitlines()[-1]
    assert tables['streams'] == tables['loop'] == '| Set5 | 32.0437 | 0.8932 |'


@pytest.mark.parametrize('dtype, peak', [(np.uint8, 255.0), (np.uint16, 65535.0)])
@pytest.mark.parametrize('layout', ['bgr', 'grey', 'bgra'])
def test_results_become_the_integers_of_clipping_scaling_and_rounding(dtype, peak, layout):
    """OpenCV's one-pass conversion (upscaler._scaled) against the plain formula, at every half-way value (rounded
    half to even) and beyond [0, 1], whole images and tiled rows alike."""
    from pfdn_arch.deploy.runtime.upscaler import from_network, to_pixels

    g = torch.Generator().manual_seed(1)
    sr = torch.rand(3, 64, 300, generator=g) * 1.4 - 0.2
    sr[0, 0, :256] = (torch.arange(256) + 0.5) / 255  # k + 1/2 at 8 bits
    sr[1, 1, :300] = (torch.arange(300) * 211 + 0.5) / 65535  # and at 16 bits
    rgb = sr.numpy().transpose(1, 2, 0)
    expected = (np.clip(rgb, 0, 1)[:, :, ::-1] * peak).round().astype(dtype)
    if layout == 'grey':
        expected = cv2.cvtColor(expected, cv2.COLOR_BGR2GRAY)
    img = {'bgr': np.zeros((16, 75, 3), dtype), 'grey': np.zeros((16, 75), dtype),
           'bgra': np.full((16, 75, 4), peak, dtype)}[layout]
    whole = from_network(sr, (peak, layout == 'grey'), img)
    assert whole.dtype == dtype
    assert np.array_equal(whole[..., :3] if layout == 'bgra' else whole, expected)
    assert np.array_equal(to_pixels(rgb, peak, layout == 'grey', dtype), expected)


@pytest.mark.parametrize('bad', ['nan', 'inf', '-inf', 'inf and -inf'])
def test_a_result_with_any_non_finite_value_is_refused_and_huge_finite_ones_become_pixels(bad):
    """The finite check (upscaler._checked, by a sum in float64) refuses one bad value anywhere in a batch, even
    infinities of both signs together, and passes finite values near float32's limit (clipped: magenta)."""
    class Fixed:  # a runner that gives back a chosen result
        upscale = 4

        def __init__(self, values):
            self.values = values

        def __call__(self, x):
            return self.values[:x.shape[0]]

    imgs = [np.zeros((15, 16, 3), np.uint8)] * 2
    result = np.full((2, 3, 60, 64), 3.4e38, np.float32)
    result[:, 1] = -3.4e38
    assert [img.tolist() for img in Upscaler(Fixed(result), batch=2).upscale_images(imgs)] == \
        [[[[255, 0, 255]] * 64] * 60] * 2  # R and B white, G black
    for v in bad.split(' and '):
        result[1, 2 if v == '-inf' else 0, 59, 63 if v == 'inf' else 0] = float(v)
    with pytest.raises(ValueError, match='NaN or Inf'):
        Upscaler(Fixed(result), batch=2).upscale_images(imgs)


# ---------------------------------------------------------------------------------------- what is said
def test_autos_reason_is_the_one_the_cost_model_had(monkeypatch):
    """fp32 under --dtype auto says why: cheaper for this work than a faster precision the backend has, or no
    faster precision there; never that a faster one would lose the picture."""
    import types
    from pfdn_arch.cli.infer import chosen
    from pfdn_arch.deploy.runtime import base
    runner = types.SimpleNamespace(name='openvino', dtype='fp32', device=torch.device('cpu'))
    monkeypatch.setattr(base, 'cached_precisions', lambda kind, device: ('fp32', 'bf16'))
    said = chosen(runner, 'auto')
    assert said.startswith('openvino fp32 (auto: for this work fp32 costs less than bf16') and '--dtype bf16' in said
    monkeypatch.setattr(base, 'cached_precisions', lambda kind, device: ('fp32',))
    assert chosen(runner, 'auto') == 'openvino fp32 (auto: openvino runs no faster precision on cpu here)'
    assert 'keeps the picture' not in said


def test_tiny_images_run_on_one_thread(tmp_path, capsys):
    from conftest import cli, tiny_checkpoint
    weights = tiny_checkpoint(tmp_path)
    for size, threads in ((16, 1), (80, 2)):
        folder = tmp_path / f'in{size}'
        folder.mkdir()
        for i in range(3):
            cv2.imwrite(str(folder / f'{i}.png'), np.full((size, size, 3), 40 * i, np.uint8))
        torch.set_num_threads(2)
        code, _, err = cli(['infer', '-i', folder, '-o', tmp_path / f'out{size}', '--weights', weights, '--backend',
                            'torch'], capsys)
        assert code == 0, err
        assert torch.get_num_threads() == threads, size


def test_every_export_file_gets_the_same_permissions(weights, tmp_path, capsys):
    assert cli(['export', '--weights', weights, '--out', tmp_path / 'e'], capsys)[0] == 0
    modes = {f: os.stat(tmp_path / 'e' / f).st_mode & 0o777 for f in os.listdir(tmp_path / 'e')
             if os.path.isfile(tmp_path / 'e' / f)}
    assert len(set(modes.values())) == 1, modes
    cv2.imwrite(str(tmp_path / 'x.png'), sample_image('chelsea.png')[:20, :20])
    code, _, err = cli(['infer', '-i', tmp_path / 'x.png', '-o', tmp_path / 'o', '--weights',
                        tmp_path / 'e' / 'pfdn_x4.safetensors', '--backend', 'torch'], capsys)
    assert code == 0, err  # the package's own .safetensors runs as --weights


def test_export_out_naming_a_file_is_one_line(weights, tmp_path, capsys):
    a_file = tmp_path / 'a_file'
    a_file.write_text('mine')
    code, _, err = cli(['export', '--weights', weights, '--out', a_file], capsys)
    one_error(code, err, a_file, 'is a file')
    assert a_file.read_text() == 'mine'


TILED_MEMORY = '''
import sys, numpy as np, torch
from pfdn_arch import PFDN
from pfdn_arch.deploy.runtime.choose import make_runner
from pfdn_arch.deploy.runtime.upscaler import Upscaler
torch.set_num_threads(1)
net = PFDN(num_feat=8, num_block=1, num_partial_feat=4, esa_channels=4, deploy=True).eval()
up = Upscaler(make_runner(net, 'torch', warn=lambda m: None), tile=64, tile_overlap=8)
img = np.random.default_rng(0).integers(0, 255, (384, 1536, 3), dtype=np.uint8)
up.upscale_image(img[:64, :64])  # warm-up
open('/proc/self/clear_refs', 'w').write('5')
base = int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]) * 1024
out = up.upscale_image(img)
peak = int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) * 1024
print(out.dtype, out.shape, peak - base, out.nbytes)
'''


def test_tiles_bound_memory_to_the_result_in_its_own_dtype_plus_a_band(tmp_path):
    r = subprocess.run([sys.executable, '-c', TILED_MEMORY], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    dtype, *rest = r.stdout.split()
    grown, result = int(rest[-2]), int(rest[-1])
    assert dtype == 'uint8'
    band = 64 * 4 * 1536 * 4 * 3 * 4  # one band of float rows: tile x scale rows of the result
    float_result = result * 4 * 4 // 3  # what accumulating the whole result in float32 (and its weights) takes
    assert grown < result + 2 * band + (64 << 20), (grown, result, band)
    assert grown < float_result, (grown, float_result)


def test_an_image_that_cannot_fit_even_in_the_smallest_tiles_is_one_line(tiny, tmp_path, capsys, monkeypatch):
    import pfdn_arch.deploy.media.images as folder
    src = tmp_path / 'a.png'
    cv2.imwrite(str(src), sample_image('chelsea.png')[:60, :80])
    monkeypatch.setattr(folder, 'available_memory', lambda: 1 << 20)
    code, _, err = infer(['-i', src, '-o', tmp_path / 'out'], capsys, tiny)
    one_error(code, err, 'a.png', 'to upscale even in tiles of 64', status=1)
    assert not (tmp_path / 'out' / 'a.png').exists()


def test_a_result_that_cannot_be_held_is_refused_from_the_header_before_decoding(tiny, tmp_path, capsys,
                                                                                monkeypatch):
    """A picture whose x4 result itself is larger than the memory there is: no tile helps, the line says so, and
    the picture is never decoded (a bomb took 22-44 s to decode before being refused)."""
    import pfdn_arch.deploy.media.images as folder
    src = tmp_path / 'big.png'
    cv2.imwrite(str(src), sample_image('chelsea.png'))
    monkeypatch.setattr(folder, 'available_memory', lambda: 4 << 20)
    monkeypatch.setattr(folder, 'read_picture', lambda path: pytest.fail('decoded'))
    code, _, err = infer(['-i', src, '-o', tmp_path / 'out', '--tile', '64'], capsys, tiny)
    line = one_error(code, err, 'big.png', 'x4 result', 'no tile size changes that', status=1)
    assert '--tile' not in line


def test_a_picture_that_does_not_fit_whole_runs_in_tiles_sized_from_memory(tiny, tmp_path, capsys, monkeypatch):
    """No flags: a picture that does not fit in memory whole is upscaled in the largest tiles that do, with a note,
    into exactly the result of ``--tile`` by hand; a ``--tile`` that does not fit names the one that does."""
    import pfdn_arch.deploy.media.images as folder
    src = tmp_path / 'a.png'
    cv2.imwrite(str(src), sample_image('chelsea.png')[:200, :240])
    monkeypatch.setattr(folder, 'available_memory', lambda: 40 << 20)  # 128 px tiles need more than its share
    code, _, err = infer(['-i', src, '-o', tmp_path / 'auto'], capsys, tiny)
    assert code == 0, err
    assert any('does not fit in memory whole; upscaled in tiles of 64 (the result of --tile 64)' in line
               for line in err), err
    monkeypatch.setattr(folder, 'available_memory', lambda: None)
    assert infer(['-i', src, '-o', tmp_path / 'by_hand', '--tile', '64'], capsys, tiny)[0] == 0
    assert (tmp_path / 'auto' / 'a.png').read_bytes() == (tmp_path / 'by_hand' / 'a.png').read_bytes()
    monkeypatch.setattr(folder, 'available_memory', lambda: 40 << 20)
    code, _, err = infer(['-i', src, '-o', tmp_path / 'asked', '--tile', '128'], capsys, tiny)
    one_error(code, err, 'in tiles of 128', 'leave --tile out', '--tile 64', status=1)


