"""The training step's speed options (amp, channels_last, compile, fused Adam), each against the plain fp32 step:
it trains, it resumes exactly, and it matches the plain step within a stated tolerance; non-finite losses stop
cleanly in both checking modes; uint8 batches become floats on the device; the online RRRB stays cheap."""
import os

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from conftest import TINY_NET, randomized, tiny_model, uint8_batch
from pfdn_arch import PFDN, RRRB
from pfdn_arch.errors import TrainingDiverged

ADAM = {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]}
# option -> (train options, tolerance on the loss and on the gradient, relative to the plain fp32 step)
OPTIONS = {
    'bf16': ({'amp': 'bf16'}, 3e-2),
    'fp16': ({'amp': 'fp16'}, 1e-2),
    'channels_last': ({'channels_last': True}, 1e-5),
    'fused_adam': ({'optim_g': dict(ADAM, fused=True)}, 1e-6),
}


def grads(model):
    return torch.cat([p.grad.flatten() for p in model.get_bare_model(model.net_g).parameters()])


def weights(model):
    return {k: v.detach().clone() for k, v in model.get_bare_model(model.net_g).state_dict().items()}


def compare_with_plain(tmp_path, train, tol, plain_train=None, **kwargs):
    plain = tiny_model(tmp_path / 'plain', train=plain_train, **kwargs)
    other = tiny_model(tmp_path / 'other', train=train, **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(weights(plain).values(), weights(other).values()))
    for m in (plain, other):
        m.feed_data(uint8_batch(0))
        m.optimize_parameters(1)
    loss_p, loss_o = plain.get_current_log()['l_pix'], other.get_current_log()['l_pix']
    assert abs(loss_o - loss_p) <= tol * loss_p, (loss_p, loss_o)
    g_p, g_o = grads(plain), grads(other)
    assert ((g_o - g_p).norm() / g_p.norm()).item() <= tol
    return other


def train_and_resume(tmp_path, train, **kwargs):
    """Two steps, a save, two more steps; a fresh model resumed from the save must make the same two steps."""
    model = tiny_model(tmp_path / 'a', train=train, **kwargs)
    losses = []
    for i in range(1, 5):
        if i == 3:
            model.save(0, 2)
        model.feed_data(uint8_batch(i))
        model.optimize_parameters(i)
        losses.append(model.get_current_log()['l_pix'])
    models_dir = model.opt['path']['models']
    state = torch.load(os.path.join(model.opt['path']['training_states'], '2.state'), weights_only=True)
    path = dict(kwargs.pop('path', {}), pretrain_network_g=os.path.join(models_dir, 'net_g_2.pth'))
    resumed = tiny_model(tmp_path / 'b', train=train, path=path, **kwargs)
    resumed.resume_training(state)
    for i in (3, 4):
        resumed.feed_data(uint8_batch(i))
        resumed.optimize_parameters(i)
    a, b = weights(model), weights(resumed)
    assert all(torch.allclose(a[k], b[k], rtol=0, atol=1e-7) for k in a), 'resumed training differs'
    return model, losses, state


@pytest.mark.parametrize('name', list(OPTIONS))
def test_option_matches_the_plain_step_trains_and_resumes(tmp_path, name):
    train, tol = OPTIONS[name]
    compare_with_plain(tmp_path / 'compare', train, tol)
    model, _, state = train_and_resume(tmp_path / 'resume', train)
    if name == 'fp16':  # the scaler's state travels with the training state
        assert isinstance(model.step.scaler, torch.amp.GradScaler)
        fresh = tiny_model(tmp_path / 'fresh', train=train)
        fresh.resume_training(dict(state, scaler=dict(state['scaler'], scale=1024.0)))
        assert fresh.step.scaler.get_scale() == 1024.0
    if name == 'fused_adam':
        assert model.optimizer_g.defaults['fused'] and model.step.on_device
    # it trains: on one fixed batch, a few steps lower the loss
    fixed = tiny_model(tmp_path / 'fit', train=train)
    fixed.feed_data(uint8_batch(7))
    first = None
    for i in range(1, 9):
        fixed.optimize_parameters(i)
        first = first or fixed.get_current_log()['l_pix']
    assert fixed.get_current_log()['l_pix'] < 0.9 * first


def test_compiled_bf16_channels_last_step_matches_resumes_and_compiles_once(tmp_path):
    """The stage-2 configuration: training form (online RRRBs), NCC taps against a frozen teacher, both compiled."""
    from torch._dynamo.utils import counters

    teacher = tmp_path / 'teacher.pth'
    torch.save({'params': PFDN(**{k: v for k, v in TINY_NET.items() if k != 'type'}).state_dict()}, teacher)
    ncc = {'ncc_opt': {'type': 'NCCLoss', 'loss_weight': 0.1, 'layers': ['block1', 'block2']}}
    setup = dict(network_t=dict(TINY_NET), path={'pretrain_network_t': str(teacher), 'strict_load_g': True,
                                                 'resume_state': None})
    train = dict(ncc, amp='bf16', channels_last=True, compile=True)
    other = compare_with_plain(tmp_path / 'compare', train, 3e-2, plain_train=ncc, **setup)
    assert set(other.get_current_log()) == {'l_pix', 'l_ncc'}
    graphs = counters['stats']['unique_graphs']
    for i in range(2, 5):
        other.feed_data(uint8_batch(i))
        other.optimize_parameters(i)
    # validation and saving use an uncompiled deployed copy, at any size, without touching the compiled graph
    with torch.no_grad():
        assert other.deployed_network()(torch.rand(1, 3, 23, 31)).shape == (1, 3, 92, 124)
    other.save(0, 4)
    other.feed_data(uint8_batch(5))
    other.optimize_parameters(5)
    assert counters['stats']['unique_graphs'] == graphs, 'the training step was recompiled'
    assert '_compiled_call_impl' in other.get_bare_model(other.net_g).__dict__
    train_and_resume(tmp_path / 'resume', train, **setup)


def test_uint8_batches_become_floats_on_the_device(tmp_path):
    model = tiny_model(tmp_path, train={'channels_last': True})
    data = uint8_batch(0)
    model.feed_data(data)
    assert model.lq.dtype == torch.float32 and model.lq.device == model.device
    assert torch.equal(model.lq, data['lq'].float() / 255) and torch.equal(model.gt, data['gt'].float() / 255)
    assert model.lq.is_contiguous(memory_format=torch.channels_last)
    # floats (BasicSR's datasets, validation) pass through unchanged
    model.feed_data({'lq': data['lq'].float() / 255, 'gt': data['gt'].float() / 255})
    assert torch.equal(model.gt, data['gt'].float() / 255)
    # channels_last reaches the online RRRB: its recomposed kernel is NHWC, as the conv that uses it runs
    net = model.get_bare_model(model.net_g)
    assert net.conv_first.weight.is_contiguous(memory_format=torch.channels_last)
    weight, _ = net.block1.conv1.fused_kernel()
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def test_non_finite_loss_stops_before_the_step(tmp_path):
    model = tiny_model(tmp_path)
    before = weights(model)
    data = uint8_batch(0)
    data['lq'] = data['lq'].float() / 255
    data['lq'][0, 0, 0, 0] = float('nan')
    model.feed_data(data)
    with pytest.raises(TrainingDiverged, match='not finite at iteration 7'):
        model.optimize_parameters(7)
    assert all(torch.equal(before[k], v) for k, v in weights(model).items())


def test_non_finite_loss_with_a_fused_optimizer_is_skipped_on_the_device_and_reported(tmp_path):
    model = tiny_model(tmp_path, train={'optim_g': dict(ADAM, fused=True)})
    assert model.step.on_device
    model.feed_data(uint8_batch(0))
    model.optimize_parameters(1)
    model.get_current_log()
    before = weights(model)
    data = uint8_batch(1)
    data['lq'] = data['lq'].float() / 255
    data['lq'][0, 0, 0, 0] = float('inf')
    model.feed_data(data)
    model.optimize_parameters(2)  # no host sync here: the fused step is skipped on the device
    assert all(torch.equal(before[k], v) for k, v in weights(model).items())
    with pytest.raises(TrainingDiverged, match=r'not finite in 1 step\(s\) between iterations 1 and 2'):
        model.get_current_log()
    with pytest.raises(TrainingDiverged):
        model.save(0, 2)
    assert not os.listdir(model.opt['path']['models'])  # nothing saved from a diverged run


@pytest.mark.parametrize('channels_last', [False, True])
def test_online_rrrb_recomposition_is_a_few_kernels_and_exact(channels_last):
    explicit = randomized(RRRB(48, mode='explicit').double())
    block = RRRB(48).double()
    block.load_state_dict(explicit.state_dict())
    if channels_last:
        block.to(memory_format=torch.channels_last)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        weight, bias = block.fused_kernel()
    names = [e.name for e in prof.events()]
    assert not set(names) & {'aten::index_put_', 'aten::_index_put_impl_', 'aten::arange', 'aten::zeros',
                             'aten::eye', 'aten::einsum'}, names
    top = [e.name for e in prof.events() if e.cpu_parent is None and e.name.startswith('aten::')
           and e.name not in ('aten::reshape', 'aten::view', 'aten::t', 'aten::permute')]
    assert len(top) <= 6, top  # few kernels per recomposition (it runs twelve times per forward); no index writes
    if channels_last:  # plain matmuls: nothing copied to change a layout
        assert names.count('aten::copy_') <= 1, names  # addmm's own copy of its input
    x = torch.rand(2, 48, 9, 11, dtype=torch.float64)
    y = torch.nn.functional.conv2d(x, weight, bias, padding=1)
    assert (y - explicit(x)).abs().max().item() < 1e-10
    # the constants are buffers: they follow .to() and stay out of the state dict
    net = PFDN().double()
    assert net.block1.conv1.inner_identity.dtype == torch.float64
    assert not any('identity' in k for k in net.state_dict())


def test_ema_is_basicsrs_formula_in_one_multi_tensor_update(tmp_path):
    model = tiny_model(tmp_path, train={'ema_decay': 0.9, 'channels_last': True})
    model.feed_data(uint8_batch(0))
    before = {k: v.clone() for k, v in model.net_g_ema.state_dict().items()}
    model.optimize_parameters(1)
    net = model.get_bare_model(model.net_g).state_dict()
    for k, v in model.net_g_ema.state_dict().items():
        assert torch.allclose(v, 0.9 * before[k] + 0.1 * net[k], atol=1e-7), k


def test_adamw_and_gradient_clipping(tmp_path):
    model = tiny_model(tmp_path, train={'optim_g': {'type': 'AdamW', 'lr': 1e-4, 'weight_decay': 0.01},
                                        'grad_clip_norm': 1e-3})
    assert isinstance(model.optimizer_g, torch.optim.AdamW)
    model.feed_data(uint8_batch(0))
    model.optimize_parameters(1)
    norm = torch.norm(torch.stack([p.grad.norm() for p in model.net_g.parameters()]))
    assert norm.item() <= 1e-3 * 1.0001


def test_ncc_without_teacher_compares_sr_with_gt(tmp_path):
    model = tiny_model(tmp_path, train={'ncc_opt': {'type': 'NCCLoss', 'loss_weight': 0.5}})
    assert model.ncc.teacher is None
    model.feed_data(uint8_batch(0))
    model.optimize_parameters(1)
    assert set(model.get_current_log()) == {'l_pix', 'l_ncc'} and model.get_current_log()['l_ncc'] > 0
