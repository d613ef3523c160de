"""The mixed-effects model: against statsmodels' MixedLM, and at its hard cases."""

import numpy as np
import pytest

from netscope.errors import NetscopeError
from netscope.multitask.linear.linalg import independent_columns, within_varying
from netscope.multitask.linear.mixed import MixedEffects


def grouped(T=30, n=12, seed=0, slope_var=0.5, cov=0.3):
    """Random intercept (var 1) and a random slope on feature 0 (var ``slope_var``)."""
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(T), n)
    X = rng.normal(size=(T * n, 2))
    b = rng.multivariate_normal([0, 0], [[1.0, cov], [cov, slope_var]], size=T)
    y = 1.0 + X @ np.array([0.5, -1.0]) + b[t, 0] + b[t, 1] * X[:, 0] + \
        rng.normal(scale=0.7, size=T * n)
    return X, y, t


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_matches_statsmodels_mixedlm(method):
    sm = pytest.importorskip("statsmodels.api")
    X, y, t = grouped()
    ours = MixedEffects(random=(0,), method=method).fit(X, y, t)
    exog = np.column_stack([np.ones(len(y)), X])
    ref = sm.MixedLM(y, exog, groups=t, exog_re=exog[:, :2]).fit(reml=method == "reml",
                                                                  method=["lbfgs"])
    # our layout is [features..., constant]; statsmodels' is [constant, features...]
    np.testing.assert_allclose(ours.fixed_effects_, np.roll(ref.fe_params, -1), atol=1e-4)
    np.testing.assert_allclose(ours.random_cov_, np.asarray(ref.cov_re), rtol=1e-3)
    np.testing.assert_allclose(ours.residual_var_, ref.scale, rtol=1e-4)
    np.testing.assert_allclose(ours.predict(X, t), ref.fittedvalues, atol=1e-3)
    assert ours.random_columns_ == (0, 1) and ours.converged_


def test_diagonal_covariance_has_no_correlation():
    X, y, t = grouped(cov=0.0)
    full = MixedEffects(random=(0,), method="ml").fit(X, y, t)
    diag = MixedEffects(random=(0,), cov="diag", method="ml").fit(X, y, t)
    assert diag.random_cov_[0, 1] == 0.0
    assert diag.deviance_ >= full.deviance_ - 1e-6  # a constrained maximum of the likelihood


def test_school_level_feature_gets_no_random_slope():
    rng = np.random.default_rng(1)
    X, y, t = grouped()
    level = rng.normal(size=30)[t]  # constant inside every task
    X3 = np.column_stack([X, level])
    m = MixedEffects().fit(X3, y, t)
    assert m.random_columns_ == (0, 1, 2)  # intercept, feature 0, feature 1; not feature 2
    with pytest.raises(NetscopeError, match="feature 2 does not vary inside any task"):
        MixedEffects(random=(2,)).fit(X3, y, t)


def test_collinear_one_hot_columns_are_dropped_not_fatal():
    X, y, t = grouped()
    onehot = np.column_stack([X[:, 0] > 0, X[:, 0] <= 0]).astype(float)  # sums to the constant
    m = MixedEffects(random="intercept").fit(np.column_stack([X, onehot]), y, t)
    ref = MixedEffects(random="intercept").fit(np.column_stack([X, onehot[:, :1]]), y, t)
    np.testing.assert_allclose(m.predict(np.column_stack([X, onehot]), t),
                               ref.predict(np.column_stack([X, onehot[:, :1]]), t), atol=1e-6)


def test_task_with_fewer_rows_than_effects_still_fits():
    X, y, t = grouped(T=20, n=10)
    keep = (t != 0) | (np.arange(len(t)) % 10 < 2)  # task 0 keeps 2 rows; 3 random effects
    X3 = np.column_stack([X, np.random.default_rng(2).normal(size=len(y))])[keep]
    m = MixedEffects().fit(X3, y[keep], t[keep])
    assert m.small_tasks_ == 1
    assert any("fewer rows than the 4 random effects" in n for n in m.notes_)
    assert np.isfinite(m.predict(X3, t[keep])).all()


def test_singular_covariance_is_reported_not_nan():
    """No slope variation between tasks at all: the covariance is singular at the optimum."""
    X, _, t = grouped(seed=3)
    rng = np.random.default_rng(3)
    y = 1.0 + X @ np.array([0.5, -1.0]) + rng.normal(size=30)[t] + \
        rng.normal(scale=0.7, size=len(t))
    m = MixedEffects(random=(0, 1)).fit(X, y, t)
    assert m.cov_rank_ < 3
    assert any("singular" in n for n in m.notes_)
    corr = m.random_correlations()
    assert np.isfinite(corr).all() and np.isfinite(m.predict(X, t)).all()


def test_independent_columns_and_within_varying():
    a = np.arange(6.0)
    D = np.column_stack([np.ones(6), a, 2 * a + 1, a**2])
    assert independent_columns(D.T @ D).tolist() == [0, 1, 3]
    t = np.array([0, 0, 0, 1, 1, 1])
    X = np.column_stack([t * 5.0, a])
    assert within_varying(X, t, 2).tolist() == [False, True]


def test_bad_parameters():
    X, y, t = grouped(T=5, n=4)
    with pytest.raises(NetscopeError, match="method must be one of"):
        MixedEffects(method="bayes").fit(X, y, t)
    with pytest.raises(NetscopeError, match="cov must be one of"):
        MixedEffects(cov="toeplitz").fit(X, y, t)
    with pytest.raises(NetscopeError, match=r"must lie in 0..1"):
        MixedEffects(random=(5,)).fit(X, y, t)
