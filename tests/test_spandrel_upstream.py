"""PFDN for spandrel upstream (contrib/spandrel/): the patch passes spandrel's own tests and linters on its 0.4.2 tree;
the patched spandrel, with no pfdn at all, loads the released weights and the files basicsr export writes exactly as
pfdn's register() does on the unpatched spandrel (the same architecture code: one home), and as basicsr infer runs
them; and register() steps aside where spandrel has its own PFDN."""
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import ENV, ROOT, SET5_HR, SPANDREL, cli, need_shared, randomized
from pfdn_arch.archs import PFDN

CONTRIB = os.path.join(ROOT, 'contrib', 'spandrel')
sys.path.insert(0, CONTRIB)
import spandrel_patch  # noqa: E402  (contrib/spandrel/: a script, not part of the package)

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def patched(tmp_path_factory):
    """spandrel 0.4.2's tree with PFDN.patch applied (a copy)."""
    tree = spandrel_patch.copy_tree(need_shared(SPANDREL), str(tmp_path_factory.mktemp('spandrel')))
    r = subprocess.run(['git', 'apply', '--binary', spandrel_patch.PATCH], cwd=tree, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return tree


def test_spandrels_own_tests_and_linters_pass_on_the_patch(weights):
    r = subprocess.run([sys.executable, os.path.join(CONTRIB, 'spandrel_patch.py'), 'check', '--spandrel',
                        need_shared(SPANDREL), '--weights', weights], capture_output=True, text=True, env=ENV,
                       timeout=1200)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-2000:]
    lines = r.stdout.splitlines()
    for step in ('are this package\'s', 'tests/test_PFDN.py tests/test_registry.py', 'none claimed by PFDN',
                 'ruff check 0.5.0', 'ruff format --check 0.5.0', 'pyright 1.1.342'):
        assert any(line.startswith('ok: ') and step in line for line in lines), (step, r.stdout)
    assert lines[-1] == 'all passed'


def test_the_patch_is_found_stale_once_the_package_changes(patched, tmp_path, monkeypatch):
    assert spandrel_patch.matches_package(patched)
    changed = tmp_path / 'spandrel_pfdn'
    shutil.copytree(spandrel_patch.SOURCE, changed, ignore=shutil.ignore_patterns('__pycache__'))
    with open(changed / '__init__.py', 'a') as f:
        f.write('# drifted\n')
    monkeypatch.setattr(spandrel_patch, 'SOURCE', str(changed))
    assert not spandrel_patch.matches_package(patched)


LOAD = r'''
import json, os, sys
import numpy as np, torch
mode, files, images, out = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
if mode == 'patched':
    sys.modules['pfdn_arch'] = None  # no pfdn: any import of it fails
import spandrel
ids = [a.architecture.id for a in spandrel.MAIN_REGISTRY.architectures()]
if mode == 'register':
    assert 'PFDN' not in ids
    import pfdn_arch.deploy.export.spandrel_arch as s
    s.register()
loaded, arrays = {}, {}
for i, path in enumerate(files):
    m = spandrel.ModelLoader().load_from_file(path).eval()
    loaded[os.path.basename(path)] = dict(arch=m.architecture.id, cls=type(m.model).__name__,
                                          module=type(m.model).__module__, hp=m.model.hyperparameters,
                                          scale=m.scale, tags=m.tags, minimum=m.size_requirements.minimum)
    for j, image in enumerate(images):
        with torch.no_grad():
            arrays[f'{i}_{j}'] = m(torch.from_numpy(np.load(image))[None])[0].numpy()
np.savez(out, **arrays)
print(json.dumps({'spandrel': spandrel.__file__, 'ids': ids, 'loaded': loaded}))
'''


def _load(mode, tree, files, images, out):
    env = dict(ENV)
    if tree:
        env['PYTHONPATH'] = os.pathsep.join([os.path.join(tree, 'libs', 'spandrel'), env.get('PYTHONPATH', '')])
    r = subprocess.run([sys.executable, '-c', LOAD, mode, json.dumps([str(f) for f in files]),
                        json.dumps([str(i) for i in images]), str(out)], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.splitlines()[-1]), dict(np.load(out))


def test_patched_spandrel_without_pfdn_loads_what_register_loads_to_the_same_outputs_as_infer(
        patched, weights, tmp_path, capsys):
    # the files: the released .pth, and what basicsr export writes of it and of a random x2 and x3 PFDN
    sources = {4: weights}
    for scale in (2, 3):
        sources[scale] = str(tmp_path / f'random_x{scale}.pth')
        torch.save(randomized(PFDN(upscale=scale, num_block=2, num_feat=16, num_partial_feat=8, esa_channels=8,
                                   deploy=True), seed=scale).state_dict(), sources[scale])
    files = [weights]
    for scale, src in sources.items():
        code, _, err = cli(['export', '--weights', src, '--out', tmp_path / 'exported', '--name', f'pfdn_x{scale}',
                            '--formats', 'pth', 'safetensors'], capsys)
        assert code == 0, err
        files += [tmp_path / 'exported' / f'pfdn_x{scale}{ext}' for ext in ('.pth', '.safetensors')]
    # Set5 crops, downscaled: PNGs for basicsr infer, the same pixels as RGB float arrays for spandrel
    lr_dir = tmp_path / 'lr'
    lr_dir.mkdir()
    images = []
    for name in sorted(os.listdir(need_shared(SET5_HR)))[:2]:
        hr = cv2.imread(os.path.join(SET5_HR, name))[:192, :256]
        lr = cv2.resize(hr, (64, 48), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(lr_dir / name), lr)
        images.append(tmp_path / f'{name}.npy')
        np.save(images[-1], np.ascontiguousarray(lr[:, :, ::-1].transpose(2, 0, 1)).astype(np.float32) / 255)

    upstream, up_out = _load('patched', patched, files, images, tmp_path / 'patched.npz')
    ours, our_out = _load('register', None, files, images, tmp_path / 'register.npz')
    assert upstream['spandrel'].startswith(patched) and not ours['spandrel'].startswith(patched)
    assert 'PFDN' in upstream['ids'] and 'PFDN' not in ours['ids']
    names = [os.path.basename(str(f)) for f in files]
    assert sorted(upstream['loaded']) == sorted(ours['loaded']) == sorted(names)
    for name in names:
        a, b = upstream['loaded'][name], ours['loaded'][name]
        assert a['arch'] == b['arch'] == 'PFDN' and a['cls'] == b['cls'] == 'PFDN', (a, b)
        assert a['module'] == 'spandrel.architectures.PFDN.__arch.PFDN'
        assert b['module'] == 'pfdn_arch.deploy.export.spandrel_pfdn.__arch.PFDN'
        assert a['hp'] == b['hp'] and a['scale'] == b['scale'] and a['tags'] == b['tags'], (a, b)
        scale = int(name.split('_x')[1][0]) if '_x' in name else 4
        assert a['scale'] == scale and a['minimum'] == 15
    assert up_out.keys() == our_out.keys()
    for key in up_out:
        assert np.array_equal(up_out[key], our_out[key]), key  # the same code on the same weights

    # the released weights as basicsr infer runs them (fp32), against spandrel's output saved as an app saves it
    code, _, err = cli(['infer', '-i', lr_dir, '-o', tmp_path / 'infer', '--weights', weights, '--backend', 'torch',
                        '--dtype', 'fp32'], capsys)
    assert code == 0, err
    for j, name in enumerate(sorted(os.listdir(lr_dir))):
        ours_png = cv2.imread(str(tmp_path / 'infer' / name))[:, :, ::-1].astype(np.float64)
        app = np.clip(up_out[f'0_{j}'].transpose(1, 2, 0) * 255, 0, 255).round()
        assert app.shape == ours_png.shape == (192, 256, 3)
        mse = np.mean((app - ours_png) ** 2)
        psnr = float('inf') if mse == 0 else 10 * np.log10(255 ** 2 / mse)
        assert psnr >= 60, (name, psnr)


STEP_ASIDE = r'''
import spandrel
before = [(a.architecture.id, type(a.architecture).__module__) for a in spandrel.MAIN_REGISTRY.architectures()]
assert ('PFDN', 'spandrel.architectures.PFDN') in before
import pfdn_arch.deploy.export.spandrel_arch as s
s.register()
s.register()
after = [(a.architecture.id, type(a.architecture).__module__) for a in spandrel.MAIN_REGISTRY.architectures()]
assert after == before, (after, before)
print(sum(i == 'PFDN' for i, _ in after))
'''


def test_register_steps_aside_where_spandrel_has_its_own_pfdn(patched):
    env = dict(ENV, PYTHONPATH=os.pathsep.join([os.path.join(patched, 'libs', 'spandrel'),
                                                ENV.get('PYTHONPATH', '')]))
    r = subprocess.run([sys.executable, '-c', STEP_ASIDE], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ['1']


TRAINING_FORM = r'''
import sys, torch, spandrel
import pfdn_arch.deploy.export.spandrel_arch as s
s.register()
m = spandrel.ModelLoader().load_from_file(sys.argv[1]).eval()
print(m.architecture.id, m.scale, type(m.model).__module__)
'''


def test_register_also_takes_a_training_form_checkpoint_fused(tmp_path):
    net = randomized(PFDN(upscale=3, num_block=2, num_feat=16, num_partial_feat=8, esa_channels=8)).eval()
    torch.save({'params': net.state_dict()}, tmp_path / 'net_g_100.pth')
    r = subprocess.run([sys.executable, '-c', TRAINING_FORM, str(tmp_path / 'net_g_100.pth')], capture_output=True,
                       text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ['PFDN', '3', 'pfdn_arch.deploy.export.spandrel_pfdn.__arch.PFDN']
