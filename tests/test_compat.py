"""Each shim of pfdn_arch.plugin.compat, tested by something that fails without it (that plain basicsr 1.4.2 does
not import on this stack: tests/test_basicsr_routes.py)."""
import os
import textwrap

import pytest
import torch

from conftest import Probes

FIRST_IMPORTS = ('pfdn_arch', 'pfdn_arch.data.paired_crop_dataset', 'pfdn_arch.models.pfdn_model')
REGISTERED = ('import importlib, sys; m = sys.argv[1]; importlib.import_module(m)\n'
              'if m == "pfdn_arch": assert "torch" not in sys.modules and "basicsr" not in sys.modules\n'
              'from basicsr.utils.registry import ARCH_REGISTRY as A, MODEL_REGISTRY as M, DATASET_REGISTRY as D, '
              'LOSS_REGISTRY as L\n'
              'print([r.get(n).__name__ for r, n in ((A, "PFDN"), (M, "PFDNModel"), (D, "PairedCropDataset"), '
              '(L, "NCCLoss"))])')


@pytest.fixture(scope='module')
def probes():
    """The module's interpreter-level checks, started together. The start-up hook is off in them (an explicit
    ``import pfdn_arch`` is what they test), except where a probe says otherwise."""
    p, off = Probes(), {'PFDN_BASICSR_HOOK': '0'}
    # Python 3.12+, where `import distutils` fails; arch_util imports distutils.version.LooseVersion, and
    # basicsr.data.degradations imports torchvision.transforms.functional_tensor (gone): both shims are needed
    p.start('distutils', textwrap.dedent('''
        import sys
        sys.modules['distutils'] = None; sys.modules['distutils.version'] = None
        import pfdn_arch, basicsr
        from basicsr.data.degradations import rgb_to_grayscale
        from basicsr.archs.arch_util import LooseVersion
        print('ok', callable(rgb_to_grayscale), LooseVersion('0.29.1') > LooseVersion('0.9.0'))'''), off)
    # CUDA hidden, so that the CPU path is checked on any machine (with CUDA it is NCCL, unchanged)
    p.start('gloo', textwrap.dedent('''
        import pfdn_arch, torch.distributed as dist
        from basicsr.utils.dist_util import init_dist, get_dist_info
        init_dist('pytorch')
        print('ok', dist.get_backend(), get_dist_info())
        dist.destroy_process_group()'''), dict(off, RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                                                MASTER_PORT='29531', CUDA_VISIBLE_DEVICES=''))
    for module in FIRST_IMPORTS:
        p.start(module, REGISTERED, off, [module])
    return p


@pytest.mark.slow
def test_functional_tensor_alias_and_distutils_make_basicsr_importable(probes):
    code, out, err = probes.result('distutils')
    assert code == 0, err
    assert 'ok True True' in out


def test_resume_state_loads_on_the_cpu_and_keeps_a_frozen_teacher_by_basicsrs_own_option(tmp_path):
    import basicsr.train as train
    state_dir = tmp_path / 'experiments' / 'exp' / 'training_states'
    state_dir.mkdir(parents=True)
    torch.save({'epoch': 1, 'iter': 8, 'optimizers': [], 'schedulers': []}, state_dir / '8.state')
    torch.save({'epoch': 0, 'iter': 4, 'optimizers': [], 'schedulers': []}, state_dir / '4.state')
    models = tmp_path / 'experiments' / 'exp' / 'models'
    models.mkdir()
    from pfdn_arch import PFDN
    torch.save({'params': PFDN(num_feat=8, num_partial_feat=4, num_block=1).state_dict()}, models / 'net_g_8.pth')
    opt = {'auto_resume': True, 'name': 'exp', 'root_path': str(tmp_path), 'num_gpu': 0,
           'path': {'resume_state': None, 'models': str(models), 'pretrain_network_t': '/teacher.pth',
                    'ignore_resume_networks': ['network_t']},
           'network_g': {}, 'network_t': {}}
    state = train.load_resume_state(opt)  # BasicSR's own calls torch.cuda.current_device() and fails without CUDA
    assert state['iter'] == 8
    assert opt['path']['resume_state'].endswith('8.state')
    assert opt['path']['pretrain_network_g'] == os.path.join(str(models), 'net_g_8.pth')
    assert opt['path']['pretrain_network_t'] == '/teacher.pth'  # the ymls' ignore_resume_networks keeps the teacher


@pytest.mark.slow
def test_pytorch_launcher_initialises_gloo_without_cuda(probes):
    code, out, err = probes.result('gloo')
    assert code == 0, err
    assert 'ok gloo (0, 1)' in out


def test_import_pfdn_arch_is_light_and_any_first_import_registers_everything(probes):
    """`import pfdn_arch` loads neither torch nor basicsr; whichever module is imported first, BasicSR's registries
    end up with all four classes (the import hook registers after basicsr's own import, mid-way through ours)."""
    for module in FIRST_IMPORTS:
        code, out, err = probes.result(module)
        assert code == 0, (module, err[-2000:])
        assert out.strip() == "['PFDN', 'PFDNModel', 'PairedCropDataset', 'NCCLoss']", (module, out)
