"""Layer and neuron conductance: completeness, the flows adding up to Integrated Gradients,
Captum on the same path, and the errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.methods.registry import explain


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1),
                         nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(3, 5)).double()


def test_a_layer_every_path_crosses_carries_the_whole_drop():
    model = _net()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    heat = explain("layer-conductance", model, x, [1, 2], layer="1", steps=400)
    torch.testing.assert_close(heat.extras["layer_total"], heat.extras["delta"], rtol=2e-3,
                               atol=1e-6)
    assert heat.extras["units"].shape == (2, 4, 8, 8) and heat.maps.shape == (2, 8, 8)
    relu = torch.relu(heat.extras["units"].sum(1))
    torch.testing.assert_close(heat.maps, relu / relu.flatten(1).amax(1).view(-1, 1, 1))


def test_the_flows_through_every_channel_add_up_to_integrated_gradients():
    """sum over units of dF/dA dA/dx is dF/dx when every path crosses the layer."""
    model = _net()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    flows = sum(explain("neuron-conductance", model, x, [3], layer="2", unit=c,
                        steps=8).attributions for c in range(3))
    ig = explain("integrated-gradients", model, x, [3], steps=8).attributions
    torch.testing.assert_close(flows, ig)


def test_a_channels_flow_is_its_layer_conductance():
    model = _net()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    layer = explain("layer-conductance", model, x, [0], layer="2", steps=300)
    for c in range(3):
        flow = explain("neuron-conductance", model, x, [0], layer="2", unit=c, steps=300)
        assert float(flow.extras["unit_total"][0]) == pytest.approx(
            float(layer.extras["units"][0, c].sum()), rel=5e-3, abs=1e-7)


def test_equal_to_captum_on_the_same_path_where_installed():
    captum = pytest.importorskip("captum.attr", reason="Captum is a peer, not a dependency")
    model = _net()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    steps = 10
    ours = explain("layer-conductance", model, x, [1, 4], layer="1", steps=steps)
    ref = captum.LayerConductance(model, model[1]).attribute(
        x.clone(), baselines=torch.zeros_like(x), target=[1, 4], n_steps=steps,
        method="riemann_trapezoid")
    torch.testing.assert_close(ours.extras["units"], ref, rtol=0, atol=1e-10)
    ours = explain("neuron-conductance", model, x, [1, 4], layer="1", unit=2, position=(3, 5),
                   steps=steps)
    ref = captum.NeuronConductance(model, model[1]).attribute(
        x.clone(), neuron_selector=(2, 3, 5), baselines=torch.zeros_like(x), target=[1, 4],
        n_steps=steps + 1, method="riemann_trapezoid")
    # Captum's trapezoid weights on n points are 1/n (halved at the ends): they sum to
    # (n - 1)/n, not 1; the rule's own weights are 1/(n - 1)
    torch.testing.assert_close(ours.attributions * steps / (steps + 1), ref, rtol=0,
                               atol=1e-10)


def test_bad_units_and_layers_are_refused():
    model = _net()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(NetscopeError, match="layer 1 has 4 channels"):
        explain("neuron-conductance", model, x, layer="1", unit=4)
    with pytest.raises(NetscopeError, match="position \\(9, 0\\) is outside"):
        explain("neuron-conductance", model, x, layer="1", position=(9, 0))
    with pytest.raises(NetscopeError, match="needs a layer with channels and a grid"):
        explain("neuron-conductance", model, x, layer="6")
    with pytest.raises(NetscopeError, match="steps must be a whole number >= 1"):
        explain("layer-conductance", model, x, steps=0)
