"""Shapley value sampling, KernelSHAP and LIME over segments: exact answers on a model that
adds one term per segment, efficiency on any model, Captum on the same samples, and the
errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.methods.registry import explain
from netscope.vision.methods.segments import segment_masks
from netscope.vision.methods.shapley_sampling import shapley_orders
from netscope.vision.methods.surrogate import fitted
from tests.vision.peer_draws import recording


class Additive(nn.Module):
    """Class c's score: sum over the 2 x 2 grid cells k of W[c, k] tanh(mean of cell k):
    one term per segment, so every Shapley value and the surrogate's fit are exact."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.W = nn.Parameter(torch.randn(3, 4, dtype=torch.float64))

    def cells(self, x):
        return torch.tanh(F.avg_pool2d(x.mean(1, keepdim=True), x.shape[-1] // 2).flatten(1))

    def forward(self, x):
        return self.cells(x) @ self.W.T


def _terms(model, x, c):
    return model.W[c].detach() * model.cells(x).detach()  # tanh(0) = 0: the zero baseline


def _per_segment(heat, masks):
    """Each segment's value (the attribution of its pixels), per image."""
    a = heat.attributions[:, 0]
    return torch.stack([torch.stack([a[i][masks[i] == k][0] for k in range(4)])
                        for i in range(len(a))])


def _conv():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 5)).double()


@pytest.mark.parametrize("name", ["shapley-sampling", "kernel-shap"])
def test_an_additive_model_gets_each_segments_term(name):
    model = Additive()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    heat = explain(name, model, x, [0, 2], segments="grid", cells=2, samples=12)
    masks = segment_masks(x, "grid", 2)
    torch.testing.assert_close(_per_segment(heat, masks),
                               torch.stack([_terms(model, x, 0)[0], _terms(model, x, 2)[1]]),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["feature-ablation", "shapley-sampling", "kernel-shap",
                                  "lime"])
def test_segment_values_are_drawn_with_their_sign(name):
    """Evidence against the class is kept: ``signed()`` is each segment's value over the
    largest magnitude (negative where the term is), while the map keeps the positive part."""
    model = Additive()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    heat = explain(name, model, x, [0], segments="grid", cells=2,
                   **({} if name == "feature-ablation" else {"samples": 64}),
                   **({"lasso_alpha": 1e-9} if name == "lime" else {}))
    masks = segment_masks(x, "grid", 2)[0]
    terms = _terms(model, x, 0)[0]
    assert (terms < 0).any() and (terms > 0).any()
    signed = heat.signed()[0]
    expected = terms / terms.abs().max()
    got = torch.stack([signed[masks == k][0] for k in range(4)])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4 if name == "lime" else 1e-6)
    assert heat.maps.min() >= 0


def test_lime_with_a_tiny_l1_weight_gets_the_terms_too():
    model = Additive()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    heat = explain("lime", model, x, [1], segments="grid", cells=2, samples=64,
                   lasso_alpha=1e-9)
    torch.testing.assert_close(_per_segment(heat, segment_masks(x, "grid", 2))[0],
                               _terms(model, x, 1)[0], rtol=1e-4, atol=1e-5)


def test_shapley_values_sum_to_the_drop_to_the_baseline_for_any_model():
    model = _conv()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    heat = explain("shapley-sampling", model, x, segments="grid", cells=2, samples=3, seed=4)
    values = _per_segment(heat, segment_masks(x, "grid", 2))
    torch.testing.assert_close(values.sum(1), heat.extras["delta"])
    t = heat.target.labels
    drop = model(x)[[0, 1], t] - model(torch.zeros_like(x))[[0, 1], t]
    torch.testing.assert_close(heat.extras["delta"], drop.detach())


def test_an_images_map_does_not_depend_on_its_batch_companions():
    model = _conv()
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    for name in ("shapley-sampling", "kernel-shap", "lime"):
        both = explain(name, model, x, [1, 2, 3], segments="grid", cells=2, samples=6)
        alone = explain(name, model, x[1:2], [2], segments="grid", cells=2, samples=6)
        torch.testing.assert_close(both.attributions[1:2], alone.attributions)


def test_shapley_equals_captum_on_the_same_orders_where_installed():
    captum = pytest.importorskip("captum.attr", reason="Captum is a peer, not a dependency")
    model = _conv()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    mask = segment_masks(x, "grid", 2)[:1]
    torch.manual_seed(5)
    ref = captum.ShapleyValueSampling(model).attribute(
        x.clone(), target=[1, 3], baselines=0.0, feature_mask=mask[:, None], n_samples=4)
    torch.manual_seed(5)
    orders = torch.stack([torch.randperm(4) for _ in range(4)])
    ours = shapley_orders(model, x, [1, 3], mask.expand(2, 8, 8), [orders, orders])
    # Captum sums the changes in float32 (its attributions' dtype)
    torch.testing.assert_close(ours.attributions, ref.double(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["kernel-shap", "lime"])
def test_surrogates_equal_captum_on_the_same_samples_where_installed(kind):
    captum = pytest.importorskip("captum.attr", reason="Captum is a peer, not a dependency")
    model = _conv()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    mask = segment_masks(x, "grid", 4)
    peer = captum.KernelShap(model) if kind == "kernel-shap" else captum.Lime(model)
    peer.perturb_func, seen = recording(peer.perturb_func)
    torch.manual_seed(2)
    ref = peer.attribute(x.clone(), target=3, baselines=0.0, feature_mask=mask[:, None],
                         n_samples=40)
    ours = fitted(model, x, [3], mask, [torch.stack(seen)], kind)
    torch.testing.assert_close(ours.attributions, ref.to(x.dtype), rtol=1e-4, atol=1e-5)


def test_bad_settings_are_refused():
    model = _conv()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(NetscopeError, match="samples must be a whole number >= 1"):
        explain("shapley-sampling", model, x, samples=0)
    with pytest.raises(NetscopeError, match="KernelSHAP needs at least 2 samples"):
        explain("kernel-shap", model, x, samples=1)
    with pytest.raises(NetscopeError, match="more cells than the image"):
        explain("shapley-sampling", model, x, cells=9)
    with pytest.raises(NetscopeError, match="superpixels asked of a 8x8 image"):
        explain("lime", model, x, cells=65)
    with pytest.raises(NetscopeError, match="segments must be"):
        explain("kernel-shap", model, x, segments=torch.zeros(7, 7, dtype=torch.long))


def test_kernelshap_draws_each_coalition_with_its_complement():
    from netscope.vision.methods.surrogate import _shapley_kernel

    rows = _shapley_kernel(6, 11, torch.Generator().manual_seed(0))
    assert rows[0].tolist() == [1] * 6 and rows[1].tolist() == [0] * 6
    for j in range(2, 10, 2):
        assert (rows[j] + rows[j + 1]).tolist() == [1] * 6
        assert 1 <= int(rows[j].sum()) <= 5  # never the full or the empty one again
    assert len(rows) == 11 and 1 <= int(rows[10].sum()) <= 5  # an odd count: the last alone
