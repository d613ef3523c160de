"""The noise tunnel over any method: analytic results on a linear model, SmoothGrad as one
case of it, Captum's NoiseTunnel on the same draws, maps-only methods, and the errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.methods.input_gradient import input_x_gradient
from netscope.vision.methods.noise_tunnel import noise_tunnel, tunnel_draws
from netscope.vision.methods.registry import METHODS, explain
from tests.vision.tiny import linear_model


def _conv():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 5)).double()


def test_input_x_gradient_of_a_linear_model_through_the_tunnel():
    """On f = w.x, Input x Gradient of x + e is (x + e) w: the mean is (x + mean e) w, the
    mean square its square's mean, the variance var(e) w^2."""
    model, W = linear_model()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    draws = torch.randn(5, 2, 3, 4, 4, dtype=torch.float64) * 0.3
    w = W[[1, 4]]
    terms = (x[None] + draws) * w[None]
    for kind, expected in (("smoothgrad", terms.mean(0)),
                           ("smoothgrad_sq", (terms ** 2).mean(0)),
                           ("vargrad", (terms ** 2).mean(0) - terms.mean(0) ** 2)):
        heat = tunnel_draws(input_x_gradient, model, x, [1, 4], draws, kind)
        torch.testing.assert_close(heat.attributions, expected)
        m = expected.abs().sum(1)
        torch.testing.assert_close(heat.maps, m / m.flatten(1).amax(1).view(-1, 1, 1))
        assert heat.target.labels.tolist() == [1, 4]


def test_smoothgrad_is_the_tunnel_over_saliency():
    model = _conv()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    smooth = explain("smoothgrad", model, x, samples=4, noise=0.1, seed=3)
    tunnel = explain("saliency", model, x, nt_samples=4, nt_noise=0.1, nt_seed=3)
    torch.testing.assert_close(smooth.maps, tunnel.maps)
    assert smooth.method == "smoothgrad" and tunnel.method == "saliency"
    assert "nt_samples" not in {s.name for s in METHODS["smoothgrad"].settings}


def test_every_method_but_the_tunnel_itself_takes_it():
    for name, m in METHODS.items():
        names = {s.name for s in m.settings}
        assert ("nt_samples" in names) == (name not in ("smoothgrad", "random")), name


def test_maps_only_methods_average_their_scaled_maps():
    """Grad-CAM keeps no attributions: the tunnel averages its scaled maps (as
    pytorch-grad-cam's aug_smooth) and scales the mean again."""
    model = _conv()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    heat = explain("gradcam", model, x, [2], nt_samples=3, nt_noise=0.2, nt_seed=1)
    gen = torch.Generator().manual_seed(1)
    sd = 0.2 * float(x.max() - x.min())
    maps = [explain("gradcam", model, x + torch.randn((1, 3, 8, 8), generator=gen,
                                                       dtype=x.dtype) * sd, [2]).maps
            for _ in range(3)]
    mean = torch.stack(maps).mean(0)
    torch.testing.assert_close(heat.maps, mean / mean.amax())
    assert heat.attributions is None and heat.target.labels.tolist() == [2]


def test_targets_fixed_on_the_clean_images():
    model = _conv()
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    top = model(x).argmax(1).tolist()
    heat = explain("input-x-gradient", model, x, nt_samples=2, nt_noise=3.0)
    assert heat.target.labels.tolist() == top


def test_equal_to_captum_on_the_same_draws_where_installed():
    captum = pytest.importorskip("captum.attr", reason="Captum is a peer, not a dependency")
    model = _conv()
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    n, sd = 4, 0.2
    for kind in ("smoothgrad", "smoothgrad_sq", "vargrad"):
        torch.manual_seed(11)
        ref = captum.NoiseTunnel(captum.InputXGradient(model)).attribute(
            x.clone(), nt_type=kind, nt_samples=n, stdevs=sd, target=[1, 2, 3])
        torch.manual_seed(11)  # Captum's draws: one normal per row of x repeated n times
        noise = torch.normal(0, torch.tensor(sd).repeat(3 * n, 3, 8, 8)).double()  # float32
        draws = noise.view(3, n, 3, 8, 8).transpose(0, 1)
        ours = tunnel_draws(input_x_gradient, model, x, [1, 2, 3], draws, kind)
        torch.testing.assert_close(ours.attributions, ref, rtol=0, atol=1e-12)


def test_bad_settings_are_refused():
    model, _ = linear_model()
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    with pytest.raises(NetscopeError, match="at least 1 noisy sample"):
        noise_tunnel(model, x, method=input_x_gradient, samples=0)
    with pytest.raises(NetscopeError, match="nt_type must be one of"):
        explain("input-x-gradient", model, x, nt_samples=2, nt_type="mean")
    with pytest.raises(NetscopeError, match="nt_noise must be a number > 0"):
        explain("input-x-gradient", model, x, nt_samples=2, nt_noise=0.0)
    plain = explain("input-x-gradient", model, x, nt_samples=0)  # 0: off
    torch.testing.assert_close(plain.attributions, explain("input-x-gradient", model,
                                                           x).attributions)


def test_the_model_is_left_as_found():
    model = _conv().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    explain("deconvolution", model, x, nt_samples=2)
    with pytest.raises(NetscopeError):
        explain("deconvolution", model, x, [9], nt_samples=2)
    assert model.training and all(torch.equal(v, before[k])
                                  for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._backward_hooks or "forward" in m.__dict__
                   for m in model.modules())
