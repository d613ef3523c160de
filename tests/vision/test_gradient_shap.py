"""GradientSHAP: exact on a linear model, completeness in expectation, Captum on the same
draws, agreement across seeds, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.baselines import baseline_sets
from netscope.vision.methods.gradient_shap import gradient_shap_draws
from netscope.vision.methods.registry import explain
from tests.vision.tiny import linear_model


def _smooth():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 5), nn.Tanh()).double()


def test_a_linear_model_sample_by_sample():
    """f = w.x: each sample's attribution (x - b) w sums to f(x) - f(b), whatever the
    point drawn; the mean is (x - mean b) w."""
    model, W = linear_model()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    refs = torch.randn(3, 3, 4, 4, dtype=torch.float64)
    heat = explain("gradient-shap", model, x, [1, 4], baselines=refs, samples=7, seed=2)
    torch.testing.assert_close(heat.attributions.flatten(1).sum(1), heat.extras["delta"])
    gen = torch.Generator().manual_seed(2)  # the baselines each image drew
    drawn = refs[torch.randint(3, (7,), generator=gen)].mean(0)
    torch.testing.assert_close(heat.attributions, (x - drawn) * W[[1, 4]])


def test_the_sum_approaches_the_expected_drop():
    model = _smooth()
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    refs = torch.randn(4, 3, 6, 6, dtype=torch.float64) * 0.5
    heat = explain("gradient-shap", model, x, [2], baselines=refs, samples=4000,
                   batch_size=500)
    with torch.no_grad():
        expected = model(x)[0, 2] - model(refs)[:, 2].mean()
    assert float(heat.attributions.sum()) == pytest.approx(float(expected), rel=0.03)


def test_runs_with_other_seeds_agree():
    model = _smooth()
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    maps = [explain("gradient-shap", model, x, [0], samples=64, seed=s).attributions.flatten()
            for s in range(4)]
    r = np.corrcoef(torch.stack(maps).numpy())
    assert r[np.triu_indices(4, 1)].min() > 0.9


def test_equal_to_captum_on_the_same_draws_where_installed():
    captum = pytest.importorskip("captum.attr", reason="Captum is a peer, not a dependency")
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                          nn.Flatten(), nn.Linear(16, 5)).double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    refs = torch.randn(5, 3, 6, 6, dtype=torch.float64)
    n, sd = 6, 0.1
    np.random.seed(0)
    torch.manual_seed(0)
    ref = captum.GradientShap(model).attribute(x.clone(), baselines=refs, target=[1, 3],
                                               n_samples=n, stdevs=sd)
    np.random.seed(0)  # Captum's draws, in its order: baselines, noise, points
    idx = torch.as_tensor(np.random.choice(5, 2 * n)).view(2, n)
    torch.manual_seed(0)
    eps = torch.normal(0, torch.tensor(sd).repeat(2 * n, 3, 6, 6)).double().view(2, n, 3, 6, 6)
    alpha = torch.as_tensor(np.random.uniform(0.0, 1.0, 2 * n)).view(2, n)
    ours = gradient_shap_draws(model, x, [1, 3], baseline_sets(x, refs), idx, alpha, eps)
    torch.testing.assert_close(ours.attributions, ref, rtol=0, atol=1e-12)


def test_bad_settings_are_refused():
    model, _ = linear_model()
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    with pytest.raises(NetscopeError, match=r"baselines must be \(K, C, H, W\)"):
        explain("gradient-shap", model, x, baselines=torch.zeros(2, 3, 5, 5))
    with pytest.raises(NetscopeError, match="samples must be a whole number >= 1"):
        explain("gradient-shap", model, x, samples=0)
    with pytest.raises(NetscopeError, match="noise must be a number >= 0"):
        explain("gradient-shap", model, x, noise=-0.1)
    with pytest.raises(NetscopeError, match="baselines must be some of zeros, blur, mean"):
        explain("gradient-shap", model, x, baselines=("zeros", "white"))
