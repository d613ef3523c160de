import numpy as np

from netscope.multitask.comparison.metrics import bland_altman, score


def test_score_definitions():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.0, 2.0, 4.0, 2.0])
    s = score(y, p, np.array([0, 0, 1, 1]), 2, reference_scale=2.0)
    assert s.mse == (0 + 0 + 1 + 4) / 4
    assert s.mse_std == s.mse / 4.0
    assert s.rmse == np.sqrt(s.mse)
    assert s.explained_variance == 1 - s.mse / np.var(y)
    np.testing.assert_allclose(s.per_task_mse, [0.0, 2.5])


def test_task_without_test_rows_is_nan_not_zero():
    s = score(np.ones(2), np.ones(2), np.array([0, 0]), 2, 1.0)
    assert s.per_task_mse[0] == 0 and np.isnan(s.per_task_mse[1])


def test_bland_altman():
    y = np.array([1.0, 2.0, 3.0])
    p = np.array([2.0, 2.0, 5.0])
    ba = bland_altman(y, p)
    np.testing.assert_allclose(ba["mean"], [1.5, 2.0, 4.0])
    np.testing.assert_allclose(ba["diff"], [1.0, 0.0, 2.0])
    assert ba["bias"] == 1.0
    assert np.isclose(ba["upper"] - ba["bias"], 1.96 * np.std([1.0, 0.0, 2.0], ddof=1))
