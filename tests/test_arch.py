"""PFDN forms, exact reparameterization, online RRRB, state-dict handling and input errors."""
import pickle
import tempfile

import pytest
import torch
from pfdn_arch import PFDN, RRRB, infer_pfdn_options, reparameterize_state_dict
from pfdn_arch.archs.pfdn.convert import checkpoint_filter
from pfdn_arch.archs.pfdn.rrrb import fuse_rrrb
from pfdn_arch.files.checkpoints import build_from_checkpoint, load_checkpoint
from pfdn_arch.errors import CheckpointError
from conftest import randomized


def count(net):
    return sum(p.numel() for p in net.parameters())


def test_parameter_counts_of_both_forms():
    assert count(PFDN()) == 972_640
    assert count(PFDN(deploy=True)) == 272_224
    assert count(PFDN().reparameterize()) == 272_224


def test_released_weights_load_strict_in_every_wrapping(weights):
    sd = torch.load(weights, weights_only=True)
    net = PFDN(deploy=True)
    net.load_state_dict(sd, strict=True)
    assert list(net.state_dict()) == list(sd)
    for wrapper in ({'params': sd}, {'params_ema': sd}, {'params': sd, 'params_ema': sd}):
        loaded = load_checkpoint_from_obj(wrapper)
        assert all(torch.equal(loaded[k], sd[k]) for k in sd)


def load_checkpoint_from_obj(obj):
    with tempfile.NamedTemporaryFile(suffix='.pth') as f:
        torch.save(obj, f.name)
        return load_checkpoint(f.name)


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_reparameterization_is_exact(scale):
    net = randomized(PFDN(upscale=scale, rrrb_mode='explicit').double(), seed=scale)
    x = torch.rand(2, 3, 23, 17, dtype=torch.float64)  # odd sizes: borders on every side are exercised
    with torch.no_grad():
        ref = net(x)
        # the state-dict conversion gives the released key layout and the same function
        deployed = PFDN(upscale=scale, deploy=True).double()
        deployed.load_state_dict(reparameterize_state_dict(net.state_dict()), strict=True)
        assert (deployed(x) - ref).abs().max().item() <= 1e-10
        net.reparameterize()  # in place
        assert net.deploy and all(m.deploy and not hasattr(m, 'expand_conv')
                                  for m in net.modules() if isinstance(m, RRRB))
        assert (net(x) - ref).abs().max().item() <= 1e-10
        assert list(net.state_dict()) == list(PFDN(upscale=scale, deploy=True).state_dict())

    net32 = randomized(PFDN(upscale=scale, rrrb_mode='explicit'), seed=scale)
    x32 = torch.rand(1, 3, 21, 19)
    with torch.no_grad():
        ref32 = net32(x32)
        assert (net32.reparameterize()(x32) - ref32).abs().max().item() <= 1e-5


def test_converted_state_dict_has_the_released_layout(weights):
    released = torch.load(weights, weights_only=True)
    converted = reparameterize_state_dict({'params': randomized(PFDN()).state_dict()})
    assert list(converted) == list(released)
    assert all(converted[k].shape == released[k].shape for k in released)


def test_online_rrrb_equals_explicit_in_value_and_gradient():
    torch.manual_seed(0)
    explicit = randomized(PFDN(rrrb_mode='explicit').double(), seed=3)
    online = PFDN(rrrb_mode='online').double()
    online.load_state_dict(explicit.state_dict())
    x = torch.rand(2, 3, 19, 22, dtype=torch.float64)
    target = torch.rand(2, 3, 76, 88, dtype=torch.float64)
    outs = []
    for net in (explicit, online):
        out = net(x)
        ((out - target) ** 2).mean().backward()
        outs.append(out.detach())
    assert (outs[0] - outs[1]).abs().max().item() <= 1e-10
    grads_e = dict(explicit.named_parameters())
    for name, p in online.named_parameters():
        assert p.grad is not None and grads_e[name].grad is not None, name
        assert torch.allclose(p.grad, grads_e[name].grad, rtol=1e-9, atol=1e-12), name


def test_fuse_rrrb_matches_bias_padded_branches_at_the_borders():
    block = randomized(RRRB(5, 2, mode='explicit').double())
    x = torch.rand(1, 5, 4, 3, dtype=torch.float64)
    w, b = fuse_rrrb(*[p for p in block.parameters()])
    assert (torch.nn.functional.conv2d(x, w, b, padding=1) - block(x)).abs().max() < 1e-12


def test_infer_options_from_either_form():
    for kwargs in ({}, {'upscale': 2, 'num_block': 3}, {'upscale': 3, 'num_feat': 32, 'num_partial_feat': 16}):
        for deploy in (False, True):
            net = PFDN(deploy=deploy, **kwargs)
            opts = infer_pfdn_options(net.state_dict())
            rebuilt = PFDN(**opts)
            rebuilt.load_state_dict(net.state_dict(), strict=True)
            assert opts['deploy'] is deploy and opts['upscale'] == kwargs.get('upscale', 4)


def test_checkpoint_filter_fuses_a_training_checkpoint_for_a_deployed_net():
    train = randomized(PFDN())
    deployed = PFDN(deploy=True)
    sd, fused = checkpoint_filter({'params': train.state_dict()}, deployed)
    assert fused and list(sd) == list(deployed.state_dict())
    deployed.load_state_dict(sd)  # the plain nn.Module method: no conversion hidden in it
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert (deployed(x) - train(x)).abs().max() < 1e-4
    same, fused = checkpoint_filter(train.state_dict(), PFDN())
    assert not fused and list(same) == list(train.state_dict())
    with pytest.raises(RuntimeError):  # PFDN itself converts nothing
        PFDN(deploy=True).load_state_dict(train.state_dict())


def test_deployed_checkpoint_into_training_net_is_refused_with_what_to_do():
    with pytest.raises(CheckpointError, match='deploy: true'):
        checkpoint_filter(PFDN(deploy=True).state_dict(), PFDN())


def test_too_small_input_names_the_minimum():
    net = PFDN(deploy=True)
    net(torch.rand(1, 3, 15, 15))  # the smallest that runs
    with pytest.raises(ValueError, match='at least 15x15'):
        net(torch.rand(1, 3, 14, 40))


def test_wrong_channel_count_says_so():
    with pytest.raises(ValueError, match='expects 3 input channels, got 4'):
        PFDN(deploy=True)(torch.rand(1, 4, 32, 32))


class Evil:
    def __reduce__(self):
        return (print, ('pwned',))


def test_pickled_code_is_refused_not_executed(tmp_path, capsys):
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        pickle.dump({'params': Evil()}, f)
    torch.save({'params': {'x': Evil()}}, tmp_path / 'evil2.pth')
    for p in (path, tmp_path / 'evil2.pth'):
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(str(p))
        assert err.value.path == str(p)
    assert 'pwned' not in capsys.readouterr().out


def test_build_from_checkpoint_rebuilds_the_released_model(weights):
    net, sd = build_from_checkpoint(weights)
    assert net.deploy and net.upscale == 4 and count(net) == 272_224


def test_reparameterized_copy_leaves_the_training_net_and_its_apparatus_behind():
    from pfdn_arch import reparameterized
    net = randomized(PFDN())
    taps = []
    net.block1.register_forward_hook(lambda *a: taps.append(1))
    net.compile()  # in place: marks the module as compiled (nothing is compiled before a call)
    copy = reparameterized(net)
    assert copy.deploy and not net.deploy and '_compiled_call_impl' not in copy.__dict__
    with torch.no_grad():
        copy(torch.rand(1, 3, 16, 16))
    assert taps == [] and net._compiled_call_impl is not None
    assert reparameterized(net, inplace=True) is net and net.deploy
