"""Properties of the NCC loss as METHOD.md section 3 defines it."""
import pytest
import torch

from basicsr.losses import build_loss
from pfdn_arch.losses import NCCLoss


def maps(seed=0, shape=(3, 5, 9, 11)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_registered_in_basicsr():
    loss = build_loss({'type': 'NCCLoss', 'loss_weight': 0.5})
    assert isinstance(loss, NCCLoss) and loss.loss_weight == 0.5


def test_zero_for_positive_affine_copies_and_two_for_negated():
    a = maps()
    scale = torch.rand(1, 5, 1, 1, dtype=torch.float64) + 0.5
    shift = torch.randn(1, 5, 1, 1, dtype=torch.float64)
    loss = NCCLoss()
    assert loss(a, a * scale + shift).item() == pytest.approx(0, abs=1e-7)
    assert loss(a, -a * scale + shift).item() == pytest.approx(2, abs=1e-7)
    assert 0.5 < loss(a, maps(1)).item() < 1.5  # unrelated maps: about 1


def test_invariant_to_per_channel_scale_and_shift():
    a, b = maps(0), maps(1)
    scale = torch.rand(3, 5, 1, 1, dtype=torch.float64) * 4 + 0.1
    shift = torch.randn(3, 5, 1, 1, dtype=torch.float64) * 10
    loss = NCCLoss()
    assert loss(a * scale + shift, b).item() == pytest.approx(loss(a, b).item(), abs=1e-7)
    assert loss(a, b * scale + shift).item() == pytest.approx(loss(a, b).item(), abs=1e-7)


def test_finite_gradient_on_constant_maps():
    const = torch.full((2, 4, 6, 6), 0.3, dtype=torch.float32, requires_grad=True)
    other = torch.randn(2, 4, 6, 6, requires_grad=True)
    value = NCCLoss()(const, other)
    value.backward()
    assert torch.isfinite(value) and value.item() == pytest.approx(1.0)
    assert torch.isfinite(const.grad).all() and torch.isfinite(other.grad).all()


def test_list_form_is_the_mean_of_the_layers_and_agrees_with_tensor_form():
    pairs = [(maps(i), maps(i + 10)) for i in range(3)]
    loss = NCCLoss(loss_weight=2.0)
    layerwise = loss([p for p, _ in pairs], [t for _, t in pairs])
    assert layerwise.item() == pytest.approx(sum(loss(p, t).item() for p, t in pairs) / 3)
    assert loss([pairs[0][0]], [pairs[0][1]]).item() == pytest.approx(loss(*pairs[0]).item())


def test_reduction_and_weight():
    a, b = maps(0), maps(1)
    per = NCCLoss(reduction='none')(a, b)
    assert per.shape == (3, 5)
    assert NCCLoss(reduction='sum')(a, b).item() == pytest.approx(per.sum().item())
    assert NCCLoss(loss_weight=3)(a, b).item() == pytest.approx(3 * per.mean().item())
    with pytest.raises(ValueError, match='reduction'):
        NCCLoss(reduction='max')
    with pytest.raises(ValueError, match='shapes differ'):
        NCCLoss()(a, b[:, :4])
