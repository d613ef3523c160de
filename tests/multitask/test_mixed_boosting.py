"""Mixed-effects boosting: recovers the random-intercept variance, beats plain boosting
when the tasks differ a lot, takes yes/no targets, and predicts new tasks from the trees
and the fixed effects."""

import numpy as np
import pytest

from netscope.multitask.trees.boosted import BoostedTrees
from netscope.multitask.trees.mixed_boosting import MixedBoosting


def grouped(seed=0, T=200, n=15, sd=1.5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(T * n, 3))
    t = np.repeat(np.arange(T), n)
    f = np.sin(2 * X[:, 0]) + np.where(X[:, 1] > 0, 1.0, -1.0)
    return X, f + rng.normal(0, sd, T)[t] + rng.normal(0, 0.3, T * n), t


def test_recovers_the_intercept_variance_and_beats_plain_boosting():
    X, y, t = grouped()
    test = np.arange(len(y)) % 4 == 0
    m = MixedBoosting(random="intercept", leaves=(3, 7)).fit(X[~test], y[~test], t[~test])
    assert m.mixed_.random_cov_[0, 0] == pytest.approx(1.5 ** 2, rel=0.25)
    plain = BoostedTrees().fit(X[~test], y[~test], t[~test])
    err = lambda est: np.mean((est.predict(X[test], t[test]) - y[test]) ** 2)  # noqa: E731
    assert err(m) < 0.6 * err(plain)  # 200 tasks of 11 training rows: categories fail
    assert m.rounds_ >= 2 and "rounds" in m.fit_summary()[0]
    assert len(m.search_) == 2 and m.leaves_ in (3, 7)


def test_new_task_gets_trees_and_fixed_effects():
    X, y, t = grouped(T=20)
    m = MixedBoosting(random="intercept", rounds=3).fit(X, y, t)
    fe = m.mixed_.fixed_effects_
    expected = m.forest_.predict(X[:5]) + X[:5] @ fe[:-1] + fe[-1]
    np.testing.assert_allclose(m.predict(X[:5], [99] * 5), expected, atol=1e-12)


def test_yes_no_with_random_slopes_beats_trees_and_the_mixed_logistic():
    """Random intercepts and slopes plus a nonlinearity: the trees alone cannot give each
    task its own slope, the mixed logistic cannot bend; together they beat both."""
    from netscope.multitask.linear.mixed import MixedEffects

    rng = np.random.default_rng(4)
    T, n = 100, 40
    X = rng.normal(size=(T * n, 3))
    t = np.repeat(np.arange(T), n)
    eta = (np.sin(2 * X[:, 0]) + X[:, 1] + rng.normal(0, 1, T)[t]
           + rng.normal(0, 1, T)[t] * X[:, 2])
    y = (rng.uniform(size=T * n) < 1 / (1 + np.exp(-eta))).astype(float)
    test = np.arange(len(y)) % 4 == 0

    def log_loss(est):
        est.fit(X[~test], y[~test], t[~test])
        p = np.clip(est.predict(X[test], t[test]), 1e-15, 1 - 1e-15)
        return -np.mean(y[test] * np.log(p) + (1 - y[test]) * np.log1p(-p))

    ours = log_loss(MixedBoosting(loss="log_loss", leaves=(3,)))
    assert ours < log_loss(BoostedTrees(loss="log_loss"))
    assert ours < log_loss(MixedEffects(loss="log_loss"))
