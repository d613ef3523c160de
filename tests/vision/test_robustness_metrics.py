"""Infidelity, max-sensitivity and the local Lipschitz estimate: known answers on tiny
models, Captum's and Quantus' numbers on the same maps and perturbations where they are
installed, and the metrics inside `vision evaluate`."""

import numpy as np
import pytest
import torch
from torch import nn

from netscope.vision.core.targets import resolve
from netscope.vision.evaluation import EvalSettings, evaluate, explainer
from netscope.vision.metrics.faithfulness import input_maps
from netscope.vision.metrics.infidelity import infidelity, infidelity_scores
from netscope.vision.metrics.robustness import (
    local_lipschitz_scores,
    max_sensitivity_scores,
    noise,
)
from netscope.vision.metrics.scored import MetricInput
from netscope.vision.models.zoo import LoadedModel, Preprocess
from tests.vision.tiny import TinyGAP


def _linear(pattern: torch.Tensor) -> nn.Module:
    """f(x)[0] = sum over channels and pixels of pattern[h, w] * x[c, h, w]."""
    c, (h, w) = 3, pattern.shape
    net = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 2)).double()
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].weight[0] = pattern.expand(c, h, w).flatten()
        net[1].weight[1] = torch.randn(c * h * w, generator=torch.Generator().manual_seed(1))
        net[1].bias.zero_()
    return net


def _inp(model, x, maps, explain=None, targets=(0, 0)):
    t = resolve(model(x), list(targets))
    return MetricInput(model, x, maps, t, explain=explain, batch_size=5, seed=3)


def test_infidelity_is_zero_for_the_model_s_own_linear_pattern():
    pattern = torch.rand(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = _linear(pattern)
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    maps = (pattern / pattern.max()).expand(2, 6, 6)  # the map at any scale: beta finds it
    got = infidelity_scores(_inp(model, x, maps), infidelity_samples=8, infidelity_noise=0.1)
    assert got.values["infidelity"].abs().max() < 1e-20
    other = torch.rand(2, 6, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    worse = infidelity_scores(_inp(model, x, other), infidelity_samples=8,
                              infidelity_noise=0.1)
    assert (worse.values["infidelity"] > 1e-6).all()


def test_a_map_that_ignores_the_input_is_perfectly_robust():
    model = TinyGAP()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    fixed = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    inp = _inp(model, x, fixed, explain=lambda m, xx, t: fixed[t.rows])
    sens = max_sensitivity_scores(inp, sensitivity_samples=4, sensitivity_radius=0.02)
    lips = local_lipschitz_scores(inp, lipschitz_samples=4, lipschitz_sd=0.1)
    assert sens.values["max_sensitivity"].abs().max() < 1e-12
    assert lips.values["local_lipschitz"].abs().max() < 1e-12


def _saliency_case():
    lm = LoadedModel("tiny", TinyGAP(), Preprocess(8), None)
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    explain = explainer("saliency", EvalSettings())
    t = resolve(lm.model(x), [0, 1, 2])
    maps = explain(lm.model, x, t)
    return lm.model, x, t, maps, explain


def test_max_sensitivity_and_lipschitz_by_hand():
    model, x, t, maps, explain = _saliency_case()
    inp = MetricInput(model, x, maps, t, explain=explain, batch_size=4, seed=7)
    draws = noise(x, 3, "uniform", 0.05, 7)
    a = input_maps(maps, x).flatten(1)
    by_hand = torch.stack([(input_maps(explain(model, x + d, t), x).flatten(1) - a).norm(dim=1)
                           / a.norm(dim=1) for d in draws]).amax(0)
    got = max_sensitivity_scores(inp, sensitivity_samples=3, sensitivity_radius=0.05)
    torch.testing.assert_close(got.values["max_sensitivity"], by_hand.double())
    gauss = noise(x, 3, "gaussian", 0.1, 7)
    by_hand = torch.stack([(input_maps(explain(model, x + d, t), x).flatten(1) - a).norm(dim=1)
                           / (d.flatten(1).norm(dim=1) + 1e-10) for d in gauss]).amax(0)
    got = local_lipschitz_scores(inp, lipschitz_samples=3, lipschitz_sd=0.1)
    torch.testing.assert_close(got.values["local_lipschitz"], by_hand.double())
    assert (got.values["local_lipschitz"] > 0).all()


def test_equal_to_captum_where_installed():
    metrics = pytest.importorskip("captum.metrics", reason="Captum is a peer, not a dependency")
    model, x, t, maps, explain = _saliency_case()
    s = 4
    draws = noise(x, s, "gaussian", 0.1, 3)
    inp = MetricInput(model, x, maps, t, explain=explain, batch_size=4, seed=3)
    ours = infidelity(inp, draws)
    per_row = draws.transpose(0, 1).flatten(0, 1)  # Captum repeats each image S times

    def perturb(inputs):
        return per_row, inputs - per_row

    attributions = input_maps(maps, x)[:, None].expand_as(x)
    ref = metrics.infidelity(model, perturb, x, attributions, target=t.labels,
                             n_perturb_samples=s, normalize=True)
    torch.testing.assert_close(ours, ref.double(), rtol=1e-6, atol=1e-12)
    uniform = noise(x, s, "uniform", 0.02, 3)
    calls = iter(uniform)

    def shaken(inputs, perturb_radius=0.02):
        return inputs + next(calls)

    def explanation(inputs, target):  # Captum passes a tuple first, then tensors
        xs = inputs[0] if isinstance(inputs, tuple) else inputs
        return (input_maps(explain(model, xs, resolve(model(xs), target.tolist())), xs),)

    ref = metrics.sensitivity_max(explanation, x, perturb_func=shaken, n_perturb_samples=1,
                                  target=t.labels)  # one draw per call: ours, in order
    got = max_sensitivity_scores(inp, sensitivity_samples=1, sensitivity_radius=0.02)
    torch.testing.assert_close(got.values["max_sensitivity"], ref.double(), rtol=1e-6,
                               atol=1e-9)


def test_equal_to_quantus_where_installed():
    quantus = pytest.importorskip("quantus", reason="Quantus is a peer, not a dependency")
    model, x, t, maps, explain = _saliency_case()
    s = 3
    a = input_maps(maps, x)[:, None].numpy()
    inp = MetricInput(model, x, maps, t, explain=explain, batch_size=4, seed=11)

    def explain_np(model, inputs, targets, **kwargs):
        xs = torch.as_tensor(inputs, dtype=torch.float64)
        return input_maps(explain(model, xs, resolve(model(xs), list(targets))), xs)[:, None] \
            .numpy()

    for kind, size, peer, ours in (
            ("uniform", 0.02, quantus.MaxSensitivity, lambda: max_sensitivity_scores(
                inp, sensitivity_samples=s, sensitivity_radius=0.02)),
            ("gaussian", 0.1, quantus.LocalLipschitzEstimate, lambda: local_lipschitz_scores(
                inp, lipschitz_samples=s, lipschitz_sd=0.1))):
        draws = iter(noise(x, s, kind, size, 11).numpy())

        def perturb(arr, indices=None, draws=draws, **kwargs):
            return arr + next(draws).reshape(arr.shape)

        metric = peer(nr_samples=s, perturb_func=perturb, disable_warnings=True)
        ref = metric(model=model.float().double(), x_batch=x.numpy(),
                     y_batch=t.labels.numpy(), a_batch=a.copy(), explain_func=explain_np,
                     device="cpu")
        got = next(iter(ours().values.values()))
        np.testing.assert_allclose(got.numpy(), np.asarray(ref, float), rtol=1e-6,
                                   err_msg=kind)


def test_in_evaluate():
    lm = LoadedModel("tiny", TinyGAP(dtype=torch.float32), Preprocess(8), None)
    rng = np.random.default_rng(0)
    images = [(f"i{k}", rng.random((10, 10, 3)).astype(np.float32)) for k in range(2)]
    settings = EvalSettings(metrics=("infidelity", "max-sensitivity", "local-lipschitz"),
                            metric_settings={"sensitivity_samples": 2, "lipschitz_samples": 2,
                                             "infidelity_samples": 4},
                            method_settings={"layer": "features.3"})
    ev = evaluate(lm, images, ["gradcam", "saliency", "random"], settings)
    table = {r["method"]: r for r in ev.table()}
    assert "rank_infidelity" in table["gradcam"] and "rank_max_sensitivity" not in \
        table["gradcam"]
    assert table["random"]["max_sensitivity"] is None  # random maps: nothing to recompute
    assert table["saliency"]["local_lipschitz"] > 0
