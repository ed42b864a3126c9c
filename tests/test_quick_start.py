"""The quick start of a checkpoint run before: ``basicsr infer`` builds its runner from the export cache's graph
(pfdn_arch/deploy/runtime/build.py, export_cache's records) without importing torch, where the one chooser
(``choose.resolve``) picks a runtime that runs the export without asking torch anything; it gives the same pixels,
and anything it cannot vouch for (a changed file, another version, a damaged graph or record, a choice torch could
change) goes by the checkpoint."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import ENV, TINY_NET, cli, randomized
from pfdn_arch.archs import PFDN
from pfdn_arch.deploy.runtime import build, choose, export_cache
from pfdn_arch.deploy.runtime.choose import Workload, make_runner, resolve
from pfdn_arch.deploy.runtime.upscaler import Upscaler
from pfdn_arch.files import checkpoints
from test_deploy import need_backend

# infer in a process of its own, then whether torch was imported: the quick route must not
INFER_AND_SAY_IF_TORCH = ('import sys\nfrom pfdn_arch.cli.main import main\ncode = main(sys.argv[1:])\n'
                          "print('torch imported:', 'torch' in sys.modules)\nsys.exit(code)")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / 'cache'
    monkeypatch.setenv('PFDN_CACHE_DIR', str(folder))
    return folder


def checkpoint(path, seed=0, **options):
    args = {k: v for k, v in TINY_NET.items() if k != 'type'}
    args.update(options)
    torch.save(randomized(PFDN(**args, deploy=True), seed=seed).state_dict(), path)
    return str(path)


def known_checkpoint(folder):
    """(path, network) of a checkpoint an earlier run made known to the export cache (its graph and record)."""
    weights = checkpoint(folder / 'net.pth')
    net = PFDN(**{k: v for k, v in TINY_NET.items() if k != 'type'}, deploy=True)
    net.load_state_dict(torch.load(weights, weights_only=True))
    export_cache.cached_export(net)
    export_cache.remember(weights, net)
    return weights, net


# enough pixels (0.66 LR Mpx) that the cost model gives the folder to OpenVINO in either precision
SIZES = ((400, 420), (400, 420), (380, 400), (410, 400))


def photos(folder, sizes=SIZES):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 0)
        cv2.imwrite(str(folder / f'p{i}.png'), img)
    return folder


def infer(args, env):
    proc = subprocess.run([sys.executable, '-c', INFER_AND_SAY_IF_TORCH, 'infer', *map(str, args)],
                          capture_output=True, text=True, env=dict(ENV, **env), timeout=600)
    assert proc.returncode == 0, proc.stderr
    return 'torch imported: True' in proc.stdout, proc.stderr


def pixels(folder):
    return {p: cv2.imread(os.path.join(folder, p), cv2.IMREAD_UNCHANGED) for p in sorted(os.listdir(folder))
            if p[0] != '.'}  # not the records beside them


@pytest.mark.parametrize('dtype', ['auto', 'fp32'])
def test_a_second_infer_of_a_checkpoint_runs_without_torch_and_writes_the_same_pixels(tmp_path, dtype):
    need_backend('openvino')
    env = {'PFDN_CACHE_DIR': str(tmp_path / 'cache')}
    weights = checkpoint(tmp_path / 'net.pth')
    src = photos(tmp_path / 'in')
    flags = ['-i', src, '--weights', weights, '--dtype', dtype]
    first_torch, first_err = infer(flags + ['-o', tmp_path / 'a'], env)
    second_torch, second_err = infer(flags + ['-o', tmp_path / 'b'], env)
    assert first_torch and not second_torch, (first_err, second_err)
    said = [[line for line in err.splitlines() if line.startswith('backend:')] for err in (first_err, second_err)]
    assert said[0] == said[1] and 'openvino' in said[0][0], said
    a, b = pixels(tmp_path / 'a'), pixels(tmp_path / 'b')
    assert a.keys() == b.keys() and len(a) == 4 and all(np.array_equal(a[k], b[k]) for k in a)
    assert all(v.shape == (4 * h, 4 * w, 3) for v, (h, w) in zip(a.values(), SIZES))


def test_the_record_finds_the_graph_by_the_files_bytes_and_only_for_this_package_and_torch(cache, tmp_path,
                                                                                          monkeypatch):
    need_backend('openvino')
    weights = checkpoint(tmp_path / 'net.pth')
    net = PFDN(**{k: v for k, v in TINY_NET.items() if k != 'type'}, deploy=True)
    net.load_state_dict(torch.load(weights, weights_only=True))
    export_cache.remember(weights, net)
    assert export_cache.recall(weights) is None  # no export in the cache yet: nothing is recorded
    graph_path = export_cache.cached_export(net)
    export_cache.remember(weights, net, qat=True)
    graph = export_cache.recall(weights)
    assert graph.graph_path == graph_path and (graph.upscale, graph.num_in_ch, graph.qat) == (4, 3, True)
    renamed = tmp_path / 'other name.pth'
    os.rename(weights, renamed)
    assert export_cache.recall(str(renamed)).graph_path == graph_path  # the same bytes under another name
    checkpoint(tmp_path / 'changed.pth', seed=1)
    assert export_cache.recall(str(tmp_path / 'changed.pth')) is None  # other weights: never the old graph
    with monkeypatch.context() as m:
        m.setattr(export_cache, '__version__', '0.0.0')
        assert export_cache.recall(str(renamed)) is None  # another version of this package
    with monkeypatch.context() as m:
        m.setattr(export_cache, '_torch_version', lambda: '1.0.0')
        assert export_cache.recall(str(renamed)) is None  # another PyTorch
    assert export_cache.recall(str(renamed)) is not None
    record = next(p for p in cache.iterdir() if export_cache.RECORDS.fullmatch(p.name))
    record.write_text('{"version": 1, "graph": ')  # cut short
    assert export_cache.recall(str(renamed)) is None
    os.remove(graph_path)
    export_cache.remember(str(renamed), net)
    assert export_cache.recall(str(renamed)) is None  # the graph gone: the record alone finds nothing


@pytest.mark.slow
def test_a_damaged_cached_graph_is_removed_and_infer_goes_the_usual_way(tmp_path):
    need_backend('openvino')
    env = {'PFDN_CACHE_DIR': str(tmp_path / 'cache')}
    weights = checkpoint(tmp_path / 'net.pth')
    src = photos(tmp_path / 'in')
    infer(['-i', src, '-o', tmp_path / 'a', '--weights', weights], env)
    (graph,) = [p for p in (tmp_path / 'cache').iterdir() if p.suffix == '.onnx']
    graph.write_bytes(b'not an onnx model')
    used_torch, err = infer(['-i', src, '-o', tmp_path / 'b', '--weights', weights], env)
    assert used_torch and 'error' not in err  # exported again from the checkpoint
    a, b = pixels(tmp_path / 'a'), pixels(tmp_path / 'b')
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert graph.read_bytes() != b'not an onnx model'  # the export made afresh, and the next run is quick again
    assert not infer(['-i', src, '-o', tmp_path / 'c', '--weights', weights], env)[0]


def _tamper_record(cache, **changes):
    record = next(p for p in cache.iterdir() if export_cache.RECORDS.fullmatch(p.name))
    data = json.loads(record.read_text())
    data.update(changes)
    record.write_text(json.dumps(data))
    return record


def _tamper_graph(cache):
    import onnx
    (graph,) = [p for p in cache.iterdir() if p.suffix == '.onnx']
    model = onnx.load(str(graph))
    weight = next(t for t in model.graph.initializer if len(t.raw_data) >= 64)
    weight.raw_data = bytes(32) + weight.raw_data[32:]  # the same size, other weights
    onnx.save(model, str(graph))


@pytest.mark.slow
@pytest.mark.parametrize('tamper', ['upscale', 'min_input', 'graph'])
def test_what_the_cache_holds_is_checked_never_believed(tmp_path, tamper):
    """A record that says x2 for an x4 graph, one that asks for 200 px inputs, a graph altered in place at the same
    size: the run says and writes what the network really does, with the pixels of a run without a cache."""
    need_backend('openvino')
    cache = tmp_path / 'cache'
    env = {'PFDN_CACHE_DIR': str(cache)}
    weights = checkpoint(tmp_path / 'net.pth')
    src = photos(tmp_path / 'in', sizes=SIZES + ((70, 70),))
    infer(['-i', src, '-o', tmp_path / 'a', '--weights', weights], env)
    if tamper == 'graph':
        _tamper_graph(cache)
    else:
        _tamper_record(cache, **{'upscale': 2} if tamper == 'upscale' else {'min_input': 200})
    proc = subprocess.run([sys.executable, '-c', INFER_AND_SAY_IF_TORCH, 'infer', '-i', str(src), '-o',
                           str(tmp_path / 'b'), '--weights', weights], capture_output=True, text=True,
                          env=dict(ENV, **env), timeout=600)
    assert proc.returncode == 0 and 'upscaled x4' in proc.stdout and 'error' not in proc.stderr, proc.stderr
    a, b = pixels(tmp_path / 'a'), pixels(tmp_path / 'b')
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    assert b['p4.png'].shape[:2] == (280, 280)  # the 70 px image too
    assert not infer(['-i', src, '-o', tmp_path / 'c', '--weights', weights], env)[0]  # quick again, rebuilt


WORKLOADS = {'one small image': [(24, 24)], 'a folder': [(256, 256)] * 30 + [(339, 510)] * 20,
             'one photo': [(1024, 768)], 'many sizes': [(40 + i, 50 + i) for i in range(37)],
             # 0.42 LR Mpx: torch's bf16 (no build) would win where torch runs it, OpenVINO's where it does not
             'a mid-sized photo': [(600, 700)]}


@pytest.mark.parametrize('work', WORKLOADS, ids=list(WORKLOADS))
@pytest.mark.parametrize('backend,dtype', [('auto', 'auto'), ('auto', 'fp32'), ('auto', 'bf16'),
                                           ('openvino', 'auto'), ('openvino', 'fp32')])
def test_the_chooser_asks_torch_only_where_its_answer_changes_the_choice(work, backend, dtype, monkeypatch):
    """Whatever torch would answer (bf16 native here or not), ``resolve`` chooses what it would choose knowing every
    backend's precisions; where it chose without asking torch, that is no torch backend (so its runner needs no
    torch)."""
    need_backend('openvino')
    workload = Workload.of(WORKLOADS[work])
    real = choose.precisions

    def knowing_all(candidates, device, dtype, workload):
        return choose.pick(candidates, {b: choose.precisions(b, device) for b in candidates}, dtype, device.type,
                           workload)
    for torch_answer in choose.TORCH_MAY_RUN['cpu']:
        asked = []

        def precisions(b, d, answer=torch_answer):
            if not choose.RUNNERS[b].runs_export:
                asked.append(b)
                return answer
            return real(b, d)
        with monkeypatch.context() as m:
            m.setattr(choose, 'precisions', precisions)
            lazy = resolve(backend, 'cpu', dtype, lambda m: None, workload)
            without_torch = not asked
            m.setattr(choose, '_pick', knowing_all)
            assert lazy == resolve(backend, 'cpu', dtype, lambda m: None, workload), torch_answer
        if without_torch:
            assert choose.RUNNERS[lazy.backend].runs_export, lazy
    folder = Workload.of(WORKLOADS['a folder'])
    with monkeypatch.context() as m:  # a folder on a CPU with OpenVINO: decided without torch
        m.setattr(choose, 'precisions', lambda b, d: pytest.fail('torch was asked') if b == 'torch' else real(b, d))
        assert resolve('auto', 'cpu', 'auto', lambda m: None, folder).backend == 'openvino'


def test_one_small_image_runs_torch_where_it_costs_less():
    """The cost model gives one 24x24 image to torch (no build): then torch is asked, and runs it."""
    need_backend('openvino')
    assert resolve('auto', 'cpu', 'auto', lambda m: None, Workload.of([(24, 24)])).backend == 'torch'


@pytest.mark.parametrize('backend,device,dtype,route', [
    ('auto', 'cpu', 'auto', 'export cache'), ('openvino', 'cpu', 'fp32', 'export cache'),
    ('onnxruntime', 'cpu', 'auto', 'export cache'), ('torch', 'cpu', 'auto', 'checkpoint'),
    ('compile', 'cpu', 'fp32', 'checkpoint'), ('auto', 'cuda', 'auto', 'export cache'),
])
def test_a_known_checkpoint_runs_from_the_cache_where_the_choice_runs_the_export(cache, tmp_path, backend, device,
                                                                                 dtype, route):
    """The chooser decides before anything is loaded: a runtime that runs the export takes the cached graph, the
    torch backends load the checkpoint (CUDA missing here: the CPU, with its note, and then the same rule)."""
    need_backend('openvino')
    need_backend('onnxruntime')
    weights, net = known_checkpoint(tmp_path)
    notes = []
    runner = build.build_runner(weights, backend, device, dtype, workload=Workload.of(WORKLOADS['a folder']),
                                warn=notes.append)
    assert runner.route == route, (runner, notes)
    assert notes == (['note: CUDA is not available; running on the CPU instead'] if device == 'cuda' else [])
    x = torch.rand(1, 3, 40, 44)
    with torch.no_grad():
        assert (torch.as_tensor(np.asarray(runner(x.numpy()))) - net(x)).abs().max() < (2e-2 if runner.dtype ==
                                                                                        'bf16' else 1e-4)


def test_openvino_without_bf16_here_says_so_once_and_runs_fp32(cache, tmp_path, monkeypatch):
    need_backend('openvino')
    weights, _ = known_checkpoint(tmp_path)
    monkeypatch.setattr(choose, 'cached_precisions', lambda runner, device: ('fp32',))
    notes = []
    runner = build.build_runner(weights, 'openvino', 'cpu', 'bf16', warn=notes.append)
    assert (runner.route, runner.dtype) == ('export cache', 'fp32')
    assert notes == ['note: bf16 is not supported by openvino here; using fp32']


def test_threads_without_torch_are_the_ones_torch_would_take():
    """The quick route splits the cores as torch would (OMP_NUM_THREADS, else the physical cores)."""
    env = {k: v for k, v in ENV.items() if k != 'OMP_NUM_THREADS'}
    code = ('import sys\nfrom pfdn_arch.deploy.runtime.base import default_threads\nn = default_threads()\n'
            "assert 'torch' not in sys.modules\nimport torch\nprint(n, torch.get_num_threads())")
    for extra in ({}, {'OMP_NUM_THREADS': '1'}):
        out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=dict(env, **extra),
                             check=True).stdout.split()
        assert out[0] == out[1], (extra, out)


def test_upscaler_takes_arrays_and_tensors_alike():
    """The media code hands numpy arrays through (no torch on the quick route); tensors give the same values."""
    net = randomized(PFDN(**{k: v for k, v in TINY_NET.items() if k != 'type'}, deploy=True)).eval()
    x = torch.rand(2, 3, 40, 52)
    for backend in ('torch', 'openvino', 'onnxruntime'):
        if backend != 'torch':
            need_backend(backend)
        runner = make_runner(net, backend, warn=lambda m: None)
        for up in (Upscaler(runner), Upscaler(runner, tile=24, tile_overlap=4, batch=3)):
            from_array, from_tensor = up(x.numpy()), up(x)
            assert isinstance(from_array, np.ndarray) and isinstance(from_tensor, torch.Tensor)
            assert from_array.dtype == np.float32 and from_array.shape == (2, 3, 160, 208)
            assert np.array_equal(from_array, from_tensor.numpy()), backend


def test_a_record_is_data_in_the_caches_folder_and_pruned_like_the_graphs(cache, tmp_path, monkeypatch):
    need_backend('openvino')
    monkeypatch.setattr(export_cache, 'KEEP', 2)
    net = PFDN(**{k: v for k, v in TINY_NET.items() if k != 'type'}, deploy=True)
    export_cache.cached_export(net)
    paths = []
    for seed in range(4):
        weights = tmp_path / f'{seed}.pth'
        weights.write_bytes(os.urandom(64))  # any bytes: the record is keyed by them
        export_cache.remember(str(weights), net)
        paths.append(weights)
    records = [p for p in cache.iterdir() if export_cache.RECORDS.fullmatch(p.name)]
    assert len(records) == 2 and all(json.loads(p.read_text())['upscale'] == 4 for p in records)
    assert export_cache.recall(str(paths[-1])) is not None and export_cache.recall(str(paths[0])) is None


def test_the_quick_route_says_of_a_qat_checkpoint_what_the_usual_route_says(cache, tmp_path, capsys, monkeypatch):
    """The record keeps whether the checkpoint was quantization-aware fine-tuning's: the note comes without the
    checkpoint being loaded (loading it here would fail the test)."""
    need_backend('openvino')
    weights = checkpoint(tmp_path / 'qat.pth')
    net = PFDN(**{k: v for k, v in TINY_NET.items() if k != 'type'}, deploy=True)
    net.load_state_dict(torch.load(weights, weights_only=True))
    export_cache.cached_export(net)
    export_cache.remember(weights, net, qat=True)

    def loaded(*args, **kwargs):
        raise AssertionError('the checkpoint was loaded')
    monkeypatch.setattr(checkpoints, 'build_from_checkpoint', loaded)
    code, _, err = cli(['infer', '-i', photos(tmp_path / 'in'), '-o', tmp_path / 'out', '--weights', weights], capsys)
    assert code == 0, err
    assert any('quantization-aware fine-tuning' in line and 'basicsr export --formats int8' in line for line in err), err
    assert any(line.startswith('backend: openvino') for line in err), err
    assert len([p for p in os.listdir(tmp_path / 'out') if p[0] != '.']) == 4
