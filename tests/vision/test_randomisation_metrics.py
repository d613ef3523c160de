"""eMPRT and sMPRT: known answers, Quantus' numbers on the same maps where it is
installed, and the metrics in `vision evaluate`."""

import numpy as np
import pytest
import torch

from netscope.vision.core.targets import resolve
from netscope.vision.evaluation import EvalSettings, evaluate, explainer
from netscope.vision.metrics.randomisation import (
    emprt_scores,
    histogram_entropy,
    smprt_scores,
)
from netscope.vision.metrics.sanity import cascading_randomization
from netscope.vision.metrics.scored import MetricInput
from netscope.vision.models.zoo import LoadedModel, Preprocess
from tests.vision.tiny import TinyGAP


def test_histogram_entropy_known_answers():
    spread = torch.linspace(0, 1, 100).view(1, 10, 10)
    assert float(histogram_entropy(spread)[0]) == pytest.approx(np.log(100), rel=1e-12)
    assert float(histogram_entropy(torch.ones(1, 4, 4))[0]) == 0.0


def _case():
    model = TinyGAP()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = resolve(model(x), [0, 1])
    return model, x, t


def test_a_map_that_ignores_the_model_has_no_emprt_and_fails_smprt():
    model, x, t = _case()

    def brightness(m, xx, tt):
        return xx.sum(1)
    inp = MetricInput(model, x, brightness(model, x, t), t, explain=brightness, seed=0)
    assert emprt_scores(inp).values["emprt"].abs().max() == 0
    got = smprt_scores(inp, smprt_samples=3, smprt_noise=0.0, sanity_checkpoints=1)
    assert got.values["smprt_spearman"].numpy() == pytest.approx(1.0)


def test_smprt_with_one_sample_is_the_sanity_check():
    """The last of the noisy copies is noise-free: one sample is the plain map."""
    model, x, t = _case()
    explain = explainer("saliency", EvalSettings())
    inp = MetricInput(model, x, explain(model, x, t), t, explain=explain, seed=4)
    got = smprt_scores(inp, smprt_samples=1, smprt_noise=0.1, sanity_checkpoints=2)
    plain = cascading_randomization(model, x, explain, t, 2, 4)
    np.testing.assert_allclose(got.values["smprt_spearman"].numpy(), plain.spearman[-1],
                               atol=1e-12)
    more = smprt_scores(inp, smprt_samples=4, smprt_noise=0.1, sanity_checkpoints=2)
    assert not np.allclose(more.values["smprt_spearman"].numpy(), plain.spearman[-1])


def test_emprt_equals_quantus_on_the_same_maps_where_installed():
    quantus = pytest.importorskip("quantus", reason="Quantus is a peer, not a dependency")
    model, x, t = _case()
    model, x = model.float().eval(), x.float()  # Quantus: float32, evaluation mode
    rng = np.random.default_rng(0)
    trained = rng.random((2, 8, 8)) ** 2
    random = rng.random((2, 8, 8))
    original = {k: v.clone() for k, v in model.state_dict().items()}

    def maps_of(m):
        same = all(torch.equal(v, original[k]) for k, v in m.state_dict().items())
        return trained if same else random

    def explain_np(model, inputs, targets, **kwargs):
        return maps_of(model)[:, None].copy()

    inp = MetricInput(model, x, torch.from_numpy(trained), t,
                      explain=lambda m, xx, tt: torch.from_numpy(maps_of(m)), seed=0)
    ours = emprt_scores(inp).values["emprt"].numpy()
    ref = quantus.EfficientMPRT(disable_warnings=True)(
        model=model, x_batch=x.numpy(), y_batch=t.labels.numpy(), a_batch=trained[:, None],
        explain_func=explain_np, device="cpu")
    np.testing.assert_allclose(ours, np.asarray(ref, float), atol=1e-9)
    for row in trained:
        assert float(histogram_entropy(torch.from_numpy(row[None]))[0]) == pytest.approx(
            quantus.functions.complexity_func.discrete_entropy(a=row, x=row), abs=1e-12)


def test_in_evaluate():
    lm = LoadedModel("tiny", TinyGAP(dtype=torch.float32), Preprocess(8), None)
    rng = np.random.default_rng(0)
    images = [(f"i{k}", rng.random((10, 10, 3)).astype(np.float32)) for k in range(2)]
    settings = EvalSettings(metrics=("deletion", "emprt", "smprt"),
                            metric_settings={"steps": 3, "smprt_samples": 2,
                                             "sanity_checkpoints": 1},
                            method_settings={"layer": "features.3"})
    ev = evaluate(lm, images, ["gradcam", "saliency", "random"], settings)
    table = {r["method"]: r for r in ev.table()}
    assert table["gradcam"]["emprt"] is not None and table["random"]["emprt"] is None
    assert -1 <= table["saliency"]["smprt_spearman"] <= 1
