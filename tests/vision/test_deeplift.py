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
