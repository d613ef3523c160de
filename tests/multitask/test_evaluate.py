import numpy as np
import pytest

from netscope.multitask.comparison.metrics import bland_altman, reliability, roc_curve, score
from netscope.multitask.targets import KINDS

REG, BIN, COUNT = KINDS["regression"], KINDS["binary"], KINDS["count"]


def test_score_definitions():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.0, 2.0, 4.0, 2.0])
    s = score(REG, y, p, np.array([0, 0, 1, 1]), 2, reference_scale=2.0).values
    assert s["mse"] == (0 + 0 + 1 + 4) / 4
    assert s["mse_std"] == s["mse"] / 4.0
    assert s["rmse"] == np.sqrt(s["mse"])
    assert s["explained_variance"] == 1 - s["mse"] / np.var(y)
    per_task = score(REG, y, p, np.array([0, 0, 1, 1]), 2).per_task
    np.testing.assert_allclose(per_task, [0.0, 2.5])


def test_task_without_test_rows_is_nan_not_zero():
    s = score(REG, np.ones(2), np.ones(2), np.array([0, 0]), 2, 1.0)
    assert s.per_task[0] == 0 and np.isnan(s.per_task[1])


def test_binary_and_count_metrics_equal_scikit_learn():
    from sklearn import metrics as skm

    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, 300)
    p[:40] = np.round(p[:40], 1)  # ties
    y = (rng.uniform(size=300) < p).astype(float)
    t = rng.integers(0, 3, 300)
    s = score(BIN, y, p, t, 3)
    assert s.values["log_loss"] == pytest.approx(skm.log_loss(y, p), abs=1e-12)
    assert s.values["auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert s.values["accuracy"] == pytest.approx(skm.accuracy_score(y, p > 0.5))
    assert s.values["brier"] == pytest.approx(skm.brier_score_loss(y, p), abs=1e-12)
    for k in range(3):
        assert s.per_task[k] == pytest.approx(skm.log_loss(y[t == k], p[t == k], labels=[0, 1]))
    fpr, tpr = roc_curve(y, p)
    ref_fpr, ref_tpr, _ = skm.roc_curve(y, p, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    mu = rng.uniform(0.1, 5, 300)
    c = rng.poisson(mu).astype(float)
    sc = score(COUNT, c, mu, t, 3).values
    assert sc["poisson_deviance"] == pytest.approx(skm.mean_poisson_deviance(c, mu), rel=1e-12)
    assert sc["mae"] == pytest.approx(skm.mean_absolute_error(c, mu))


def test_auc_is_nan_with_one_class_and_reliability_bins():
    s = score(BIN, np.ones(4), np.full(4, 0.7), np.zeros(4, int), 1)
    assert np.isnan(s.values["auc"])
    r = reliability(np.array([0, 1, 1, 0.0]), np.array([0.05, 0.95, 0.91, 0.5]))
    np.testing.assert_allclose(r["predicted"], [0.05, 0.5, 0.93])
    np.testing.assert_allclose(r["observed"], [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(r["rows"], [1, 1, 2])


def test_bland_altman():
    y = np.array([1.0, 2.0, 3.0])
    p = np.array([2.0, 2.0, 5.0])
    ba = bland_altman(y, p)
    np.testing.assert_allclose(ba["mean"], [1.5, 2.0, 4.0])
    np.testing.assert_allclose(ba["diff"], [1.0, 0.0, 2.0])
    assert ba["bias"] == 1.0
    assert np.isclose(ba["upper"] - ba["bias"], 1.96 * np.std([1.0, 0.0, 2.0], ddof=1))
