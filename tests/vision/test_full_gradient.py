"""FullGrad: the bias terms complete the score on a piecewise-linear network, the map is the
paper's, and what a model without biases or with smooth activations gets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.methods.full_gradient import bias_of
from netscope.vision.methods.registry import explain


def _net(act=nn.ReLU):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), act(),
                        nn.Conv2d(4, 4, 3, stride=2, padding=1), act(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)).double()
    with torch.no_grad():
        bn = net[1]
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    return net.eval()


def test_the_bias_terms_complete_the_score():
    model = _net()
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    heat = explain("fullgrad", model, x, [0, 2, 4])
    score = model(x)[[0, 1, 2], [0, 2, 4]].detach()
    torch.testing.assert_close(heat.extras["input_total"] + heat.extras["bias_total"], score)
    assert float(heat.extras["completeness_error"].max()) < 1e-10 and not heat.warnings


def _post(v):
    v = v.abs()
    v = v - v.flatten(1).min(1).values.view(-1, 1, 1, 1)
    return v / (v.flatten(1).max(1).values.view(-1, 1, 1, 1) + 1e-6)


def test_the_map_is_the_papers():
    """|term| min-max scaled per image over all channels, bias terms resized with aligned
    corners, everything summed (the authors' code)."""
    model = _net()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    xi = x.clone().requires_grad_(True)
    z0 = model[0](xi)
    z1 = model[1](z0)
    z3 = model[3](model[2](z1))
    out = model[7](model[6](model[5](model[4](z3))))
    gx, g0, g1, g3 = torch.autograd.grad(out[[0, 1], [3, 1]].sum(), [xi, z0, z1, z3])
    expected = _post(gx * x).sum(1)
    for g, layer in ((g0, model[0]), (g1, model[1]), (g3, model[3])):
        term = _post(g * bias_of(layer).view(1, -1, 1, 1))
        expected = expected + F.interpolate(term, size=(8, 8), mode="bilinear",
                                            align_corners=True).sum(1)
    heat = explain("fullgrad", model, x, [3, 1])
    torch.testing.assert_close(heat.maps, expected / expected.flatten(1).amax(1).view(-1, 1, 1))


def test_smooth_activations_are_reported():
    heat = explain("fullgrad", _net(nn.Tanh), torch.randn(1, 3, 8, 8, dtype=torch.float64))
    assert heat.warnings and "piecewise-linear" in heat.warnings[0]


def test_a_model_without_spatial_biases_is_refused():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(), nn.Flatten(),
                          nn.Linear(144, 3)).double()
    with pytest.raises(NetscopeError, match="FullGrad needs convolutions or batch norms"):
        explain("fullgrad", model, torch.randn(1, 3, 8, 8, dtype=torch.float64))
