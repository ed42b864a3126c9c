"""The ONNX exports kept between runs (pfdn_arch/deploy/runtime/export_cache.py): a second build of the same network
exports nothing, anything that changes the graph finds no old file, refreshes (training's validation) never go
through it, a damaged file is replaced, and a cache that is off or cannot be written changes nothing but speed."""
import os

import pytest
import torch

from conftest import TINY_NET, randomized
from pfdn_arch.archs import PFDN
from pfdn_arch.deploy.runtime import export_cache
from pfdn_arch.deploy.runtime.choose import make_runner
from test_deploy import need_backend

BACKENDS = ['openvino', 'onnxruntime']


def tiny(seed=0, **options):
    args = {k: v for k, v in TINY_NET.items() if k != 'type'}
    args.update(options)
    return randomized(PFDN(**args, deploy=True), seed=seed).eval()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / 'cache'
    monkeypatch.setenv('PFDN_CACHE_DIR', str(folder))
    return folder


def exports(monkeypatch):
    """A list that records every ONNX export the cache makes."""
    made = []
    real = export_cache.export_fp32
    monkeypatch.setattr(export_cache, 'export_fp32', lambda net, path: made.append(path) or real(net, path))
    return made


def files(folder):
    """The cache's files, less each graph's content digest beside it (``<graph>.sha256``, checked below)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith('.sha256')) if folder.is_dir() else []


@pytest.mark.parametrize('backend', BACKENDS)
def test_a_second_build_of_the_same_weights_exports_nothing_and_runs_the_same(cache, monkeypatch, backend):
    need_backend(backend)
    made = exports(monkeypatch)
    x = torch.rand(1, 3, 24, 31)
    net = tiny()
    first = make_runner(net, backend)(x)
    assert len(made) == 1 and len(files(cache)) == 1 and files(cache)[0].endswith('.onnx')
    second = make_runner(tiny(), backend)(x)  # another object of the same weights: the same file
    assert len(made) == 1 and torch.equal(first, second)
    with torch.no_grad():
        assert (second - net(x)).abs().max().item() <= 1e-4


def test_anything_that_changes_the_graph_gets_a_file_of_its_own(cache):
    digests = {export_cache.graph_digest(n) for n in (tiny(), tiny(seed=1), tiny(upscale=2), tiny(num_block=1))}
    assert len(digests) == 4
    net = tiny()
    with torch.no_grad():
        net.conv_first.weight[0, 0, 0, 0] += 1e-6  # one weight, barely
    assert export_cache.graph_digest(net) != export_cache.graph_digest(tiny())


@pytest.mark.parametrize('backend', BACKENDS)
def test_refreshed_weights_export_afresh_outside_the_cache(cache, monkeypatch, backend):
    need_backend(backend)
    runner = make_runner(tiny(), backend)
    made = exports(monkeypatch)
    x = torch.rand(1, 3, 20, 20)
    newer = tiny(seed=3)
    runner.refresh(newer)
    assert made == [] and len(files(cache)) == 1  # nothing new kept: validations would fill the cache
    with torch.no_grad():
        assert (runner(x) - newer(x)).abs().max().item() <= 1e-4


@pytest.mark.parametrize('backend', BACKENDS)
def test_a_damaged_cached_file_is_replaced_and_the_network_runs(cache, monkeypatch, backend):
    need_backend(backend)
    net = tiny()
    path = export_cache.cached_export(net)
    with open(path, 'r+b') as f:
        f.truncate(os.path.getsize(path) // 3)
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        assert (make_runner(net, backend)(x) - net(x)).abs().max().item() <= 1e-4
    assert export_cache.intact(path)  # the damaged file was exported again, and sealed
    assert export_cache.cached_export(net) == path and os.path.getsize(path) > 0


@pytest.mark.parametrize('setting', ['0', ''])
def test_a_cache_turned_off_writes_nothing(tmp_path, monkeypatch, setting):
    need_backend('openvino')
    monkeypatch.setenv('PFDN_CACHE_DIR', setting)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert export_cache.cache_dir() is None and export_cache.cached_export(tiny()) is None
    make_runner(tiny(), 'openvino')(torch.rand(1, 3, 20, 20))
    assert list(tmp_path.iterdir()) == []


def test_the_default_folder_is_the_users_cache(tmp_path, monkeypatch):
    monkeypatch.delenv('PFDN_CACHE_DIR')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert export_cache.cache_dir() == str(tmp_path / 'xdg' / 'pfdn')
    monkeypatch.delenv('XDG_CACHE_HOME')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert export_cache.cache_dir() == str(tmp_path / 'home' / '.cache' / 'pfdn')


def test_a_cache_that_cannot_be_written_still_runs(tmp_path, monkeypatch):
    need_backend('openvino')
    blocker = tmp_path / 'a file'
    blocker.write_text('not a folder')
    monkeypatch.setenv('PFDN_CACHE_DIR', str(blocker / 'cache'))
    assert export_cache.cached_export(tiny()) is None
    net = tiny()
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        assert (make_runner(net, 'openvino')(x) - net(x)).abs().max().item() <= 1e-4
    assert blocker.read_text() == 'not a folder'


def test_only_the_newest_exports_are_kept_and_only_ours_are_removed(cache, monkeypatch):
    monkeypatch.setattr(export_cache, 'KEEP', 2)
    cache.mkdir()
    (cache / 'notes.txt').write_text('mine')
    (cache / 'model.onnx').write_text('mine too')
    paths = []
    for seed in range(3):
        paths.append(export_cache.cached_export(tiny(seed=seed)))
        os.utime(paths[-1], (1000 + seed, 1000 + seed))
    export_cache.cached_export(tiny(seed=1))  # used again: now the newest
    export_cache.cached_export(tiny(seed=3))
    kept = set(files(cache))
    assert kept == {os.path.basename(paths[1]), os.path.basename(export_cache.cached_export(tiny(seed=3))),
                    'notes.txt', 'model.onnx'}
    digests = {p.name for p in cache.iterdir() if p.name.endswith('.sha256')}
    assert digests == {name + '.sha256' for name in kept if name.startswith('pfdn-')}  # none left of pruned graphs


@pytest.mark.parametrize('backend', BACKENDS)
def test_a_cached_graph_altered_in_place_is_never_run(cache, monkeypatch, backend):
    """The same size, other bytes (a constant changed): the graph's digest beside it says so, and it is exported
    afresh instead of running; a graph without its digest is not believed either."""
    need_backend(backend)
    net = tiny()
    path = export_cache.cached_export(net)
    import onnx
    model = onnx.load(path)
    weight = next(t for t in model.graph.initializer if len(t.raw_data) >= 64)
    raw = bytearray(weight.raw_data)
    raw[:32] = bytes(32)  # the same length: the file keeps its size
    weight.raw_data = bytes(raw)
    size = os.path.getsize(path)
    onnx.save(model, path)
    assert os.path.getsize(path) == size and not export_cache.intact(path)
    made = exports(monkeypatch)
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        assert (make_runner(net, backend)(x) - net(x)).abs().max().item() <= 1e-4
    assert len(made) == 1 and export_cache.intact(path)  # exported afresh, sealed again
    os.remove(path + '.sha256')
    assert export_cache.cached_export(net) == path and len(made) == 2  # unsealed: made again
