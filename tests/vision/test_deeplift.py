"""DeepLIFT (Rescale): the rule by hand on a tiny ReLU network, completeness, Captum, the
model left as found, and the errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.methods.registry import explain


def _net():
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(3, 2)).double()


def test_the_rescale_rule_by_hand_and_completeness():
    """1x1 conv -> ReLU -> mean -> linear, baseline zeros: each hidden unit's multiplier is
    (relu(z) - relu(z0)) / (z - z0) at every position, z0 = the conv's bias; the attribution
    of input channel i at a position is x_i * sum_h W2[c, h] / HW * m_h * W1[h, i]."""
    net = _net()
    conv, head = net[0], net[4]
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    heat = explain("deeplift", net, x, [1], baseline="zeros")
    W1, b1 = conv.weight.detach()[:, :, 0, 0], conv.bias.detach()
    z = torch.einsum("hi,ipq->hpq", W1, x[0]) + b1.view(-1, 1, 1)
    z0 = b1.view(-1, 1, 1).expand_as(z)
    m = (z.clamp(min=0) - z0.clamp(min=0)) / (z - z0)
    w = head.weight.detach()[1] / 9
    expected = torch.einsum("h,hpq,hi,ipq->ipq", w, m, W1, x[0])
    torch.testing.assert_close(heat.attributions[0], expected)
    # the attributions sum to F(x) - F(baseline), exactly for a ReLU network
    delta = net(x)[0, 1] - net(torch.zeros_like(x))[0, 1]
    torch.testing.assert_close(heat.attributions.sum(), delta)
    assert heat.extras["completeness_error"].item() < 1e-12


def test_equal_to_captum_where_installed():
    captum = pytest.importorskip("captum.attr", reason="Captum is a peer, not a dependency")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                        nn.Sigmoid(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 5)).double()
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    ref = captum.DeepLift(net).attribute(x.clone(), baselines=torch.zeros_like(x),
                                         target=[1, 2, 3])
    torch.testing.assert_close(explain("deeplift", net, x, [1, 2, 3]).attributions, ref,
                               rtol=0, atol=1e-12)



def test_where_image_and_baseline_agree_the_slope_is_captums():
    """A baseline equal to the image on its left half: there the activations' inputs are
    equal and the multiplier is each activation's own slope (ReLU's by a table, LeakyReLU's
    and Sigmoid's by autograd), as Captum takes the gradient."""
    captum = pytest.importorskip("captum.attr", reason="Captum is a peer, not a dependency")
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 1),
                        nn.LeakyReLU(0.2), nn.Conv2d(4, 4, 1), nn.Sigmoid(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)).double()
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    base = torch.randn_like(x)
    base[..., :6] = x[..., :6]
    ref = captum.DeepLift(net).attribute(x.clone(), baselines=base, target=[0, 4])
    ours = explain("deeplift", net, x, [0, 4], baseline=base)
    torch.testing.assert_close(ours.attributions, ref, rtol=0, atol=1e-12)
    assert ours.extras["completeness_error"].max() < 1e-9


def test_the_model_is_left_as_found_even_when_the_method_raises():
    net = _net()
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    before = net(x)
    with pytest.raises(NetscopeError):
        explain("deeplift", net, x, [9])
    explain("deeplift", net, x, [0])
    relu = net[1]
    assert "forward" not in relu.__dict__ and not hasattr(relu, "_deeplift_forward")
    torch.testing.assert_close(net(x), before)


def test_a_model_without_activation_modules_is_refused():
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(2, 3)).double()
    with pytest.raises(NetscopeError, match="has none that it can reach"):
        explain("deeplift", net, torch.randn(1, 3, 4, 4, dtype=torch.float64))


def test_in_place_activations_give_the_same_attributions():
    net = _net()
    inplace = _net()
    inplace[1] = nn.ReLU(inplace=True)
    x = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(explain("deeplift", inplace, x, [0, 1]).attributions,
                               explain("deeplift", net, x, [0, 1]).attributions)


def test_deeplift_shap_is_the_mean_of_deeplift_over_its_baselines():
    net = _net()
    x = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    refs = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    heat = explain("deeplift-shap", net, x, [0, 1], baselines=refs)
    each = [explain("deeplift", net, x, [0, 1], baseline=r).attributions for r in refs]
    torch.testing.assert_close(heat.attributions, torch.stack(each).mean(0))
    # complete against the mean output over the baselines
    mean_base = net(refs)[:, [0, 1]].mean(0)
    torch.testing.assert_close(heat.attributions.flatten(1).sum(1),
                               net(x)[[0, 1], [0, 1]] - mean_base)
    named = explain("deeplift-shap", net, x, [0, 1])  # zeros, blur, mean of each image
    assert named.extras["completeness_error"].max() < 1e-10


def test_deeplift_shap_equals_captum_where_installed():
    captum = pytest.importorskip("captum.attr", reason="Captum is a peer, not a dependency")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                        nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 5)).double()
    x, refs = torch.randn(3, 3, 16, 16, dtype=torch.float64), torch.randn(4, 3, 16, 16,
                                                                         dtype=torch.float64)
    ref = captum.DeepLiftShap(net).attribute(x.clone(), baselines=refs, target=[1, 2, 3])
    torch.testing.assert_close(explain("deeplift-shap", net, x, [1, 2, 3],
                                       baselines=refs).attributions, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("baselines, message", [
    (torch.zeros(2, 3, 3), r"baselines must be \(K, C, H, W\)"),
    ((), "baselines needs at least one of zeros, blur, mean"),
])
def test_deeplift_shap_bad_baselines(baselines, message):
    with pytest.raises(NetscopeError, match=message):
        explain("deeplift-shap", _net(), torch.randn(1, 2, 3, 3, dtype=torch.float64),
                baselines=baselines)


class _Shared(nn.Module):
    """One ReLU module called twice (Captum's DeepLift refuses such models)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.c1, self.c2 = nn.Conv2d(2, 3, 1), nn.Conv2d(3, 3, 1)
        self.relu, self.head = nn.ReLU(), nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.c2(self.relu(self.c1(x))))
        return self.head(h.mean((2, 3)))


def test_an_activation_called_twice_is_rescaled_per_call():
    net = _Shared().double()
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    heat = explain("deeplift", net, x, [0, 1])
    delta = net(x)[[0, 1], [0, 1]] - net(torch.zeros_like(x))[:, [0, 1]].diagonal()
    torch.testing.assert_close(heat.attributions.flatten(1).sum(1), delta)


class _Branching(nn.Module):
    """Runs a second activation only on inputs with a positive sum."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.relu, self.head = nn.Conv2d(2, 2, 1), nn.ReLU(), nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.conv(x))
        if x.sum() > 0:
            h = self.relu(h - 0.1)
        return self.head(h.mean((2, 3)))


def test_a_model_whose_path_depends_on_the_input_is_refused():
    net = _Branching().double()
    x = torch.ones(1, 2, 3, 3, dtype=torch.float64)
    with pytest.raises(NetscopeError, match="ran differently on the two|made fewer calls"):
        explain("deeplift", net, x, [0])  # the image takes the branch, the zero baseline not
    with pytest.raises(NetscopeError, match="made fewer calls"):
        explain("deeplift", net, -x, [0], baseline=x)
    assert "forward" not in net.relu.__dict__


@pytest.mark.parametrize("act", [nn.ReLU(), nn.ReLU6(), nn.ReLU6(inplace=True), nn.ELU()])
def test_the_slope_table_is_autograds_at_kinks_too(act):
    from netscope.vision.methods.deeplift import slope_of

    x = torch.tensor([-1.0, 0.0, 0.5, 6.0, 7.0], dtype=torch.float64)
    xg = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(act(xg * 1.0).sum(), xg)
    torch.testing.assert_close(slope_of(act, act.forward)(x), expected)
    torch.testing.assert_close(x, torch.tensor([-1.0, 0.0, 0.5, 6.0, 7.0],
                                               dtype=torch.float64))  # x left as it was
