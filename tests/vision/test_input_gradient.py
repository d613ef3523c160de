"""Input x Gradient and Deconvolution: analytic results on tiny models, the model left as
found, and the errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.methods.registry import explain


def test_input_x_gradient_of_a_linear_model_is_each_pixels_term_of_the_score():
    torch.manual_seed(0)
    lin = nn.Linear(3 * 4 * 4, 5).double()
    model = nn.Sequential(nn.Flatten(), lin)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    heat = explain("input-x-gradient", model, x, [1, 4])
    W = lin.weight.detach().view(5, 3, 4, 4)
    expected = x * W[[1, 4]]
    torch.testing.assert_close(heat.attributions, expected)
    # the terms add up to the score without its bias
    torch.testing.assert_close(heat.attributions.flatten(1).sum(1),
                               model(x)[[0, 1], [1, 4]] - lin.bias[[1, 4]])
    torch.testing.assert_close(heat.maps, expected.abs().sum(1) /
                               expected.abs().sum(1).flatten(1).amax(1).view(-1, 1, 1))


def test_deconvolution_passes_positive_gradients_through_relus_whatever_the_input():
    """conv -> ReLU -> pool -> linear: the gradient reaching the ReLU is w_c / HW for every
    position; the deconvnet passes relu(w_c) / HW everywhere (also where the ReLU's input
    was negative), then back through the convolution."""
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 2, 1, bias=False).double()
    head = nn.Linear(2, 3).double()
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    heat = explain("deconvolution", model, x, [2])
    g_relu = head.weight.detach()[2].clamp(min=0) / 16  # (2,)
    expected = torch.einsum("c,ci->i", g_relu, conv.weight.detach()[:, :, 0, 0])
    torch.testing.assert_close(heat.attributions[0], expected.view(3, 1, 1).expand(3, 4, 4))


def test_the_model_is_left_as_found_even_when_the_method_raises():
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(2, 3)).double()
    relu = model[1]
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    with pytest.raises(NetscopeError):
        explain("deconvolution", model, x, [7])  # no class 7
    assert "forward" not in relu.__dict__ and not relu._forward_hooks
    explain("deconvolution", model, x, [1])
    assert "forward" not in relu.__dict__
    torch.testing.assert_close(model(x), model(x))


def test_deconvolution_needs_relu_modules():
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Tanh(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(2, 3)).double()
    with pytest.raises(NetscopeError, match="nn.ReLU/ReLU6 modules; this model has none"):
        explain("deconvolution", model, torch.randn(1, 3, 4, 4, dtype=torch.float64))


def test_both_equal_captum_where_installed():
    captum = pytest.importorskip("captum.attr", reason="Captum is a peer, not a dependency")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)).double()
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    for name, cls in (("input-x-gradient", captum.InputXGradient),
                      ("deconvolution", captum.Deconvolution)):
        ref = cls(net).attribute(x.clone(), target=[1, 2, 3])
        torch.testing.assert_close(explain(name, net, x, [1, 2, 3]).attributions, ref,
                                   rtol=0, atol=1e-12)
