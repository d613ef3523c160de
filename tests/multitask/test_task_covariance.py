"""Multi-task relationship learning: the inner solve is exact, and the learned task
correlations show which tasks go together."""

import numpy as np
import pytest

from netscope.errors import NetscopeError
from netscope.multitask.linear.linalg import covariance_to_correlation
from netscope.multitask.linear.ridge import task_grams
from netscope.multitask.linear.task_covariance import (
    LearnedTaskCovariance,
    _solve_cg,
    _sqrt_psd,
    _Stats,
)


def test_fixed_omega_solve_equals_direct_quadratic(tiny):
    X, y, t = tiny
    T, d = 4, X.shape[1]
    A, c = task_grams(X, y, t, T)
    rng = np.random.default_rng(0)
    R = rng.normal(size=(T, T))
    omega = R @ R.T + 0.5 * np.eye(T)
    omega /= np.trace(omega)
    lam0, lam1, lam2 = 0.3, 0.7, 1.9
    w0, U = _solve_cg(_Stats(A, c), _sqrt_psd(omega), omega, lam0, lam1, lam2,
                      np.zeros(d), np.zeros((d, T)), rtol=1e-24)
    W = w0[:, None] + U @ _sqrt_psd(omega)
    # direct: unknowns [w0, v_1..v_T]; the coupling is lam2 * (Omega^-1 kron I_d)
    n = d * (T + 1)
    H, g = np.zeros((n, n)), np.zeros(n)
    for k in range(T):
        idx = np.r_[0:d, d * (k + 1):d * (k + 2)]
        H[np.ix_(idx, idx)] += np.block([[A[k], A[k]], [A[k], A[k]]])
        g[idx] += np.concatenate([c[k], c[k]])
    H[:d, :d] += lam0 * np.eye(d)
    H[d:, d:] += lam1 * np.eye(d * T) + lam2 * np.kron(np.linalg.inv(omega), np.eye(d))
    sol = np.linalg.solve(H, g)
    direct = sol[:d, None] + sol[d:].reshape(T, d).T
    np.testing.assert_allclose(W, direct, atol=1e-6)


def two_clusters(seed=0):
    """Tasks 0-3 share one weight vector, tasks 4-7 its opposite."""
    rng = np.random.default_rng(seed)
    w = np.array([1.5, -1.0, 0.5])
    X, y, t = [], [], []
    for k in range(8):
        Xk = rng.normal(size=(25, 3))
        X.append(Xk)
        y.append(Xk @ (w if k < 4 else -w) + 0.2 * rng.normal(size=25))
        t.append(np.full(25, k))
    return np.vstack(X), np.concatenate(y), np.concatenate(t)


def test_learned_correlations_recover_clusters():
    X, y, t = two_clusters()
    m = LearnedTaskCovariance().fit(X, y, t)
    corr = m.correlations()
    assert corr.shape == (8, 8) and np.isfinite(corr).all()
    same = [corr[i, j] for i in range(8) for j in range(8) if i != j and (i < 4) == (j < 4)]
    other = [corr[i, j] for i in range(8) for j in range(8) if (i < 4) != (j < 4)]
    assert min(same) > 0.8 and max(other) < -0.8
    assert np.mean((m.predict(X, t) - y) ** 2) < 0.1


def test_correlation_of_a_zero_variance_task_is_zero_not_nan():
    cov = np.array([[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(covariance_to_correlation(cov), [[1.0, 0.0], [0.0, 0.0]])


def test_bad_parameters(tiny):
    X, y, t = tiny
    with pytest.raises(NetscopeError, match="penalty grids of numbers > 0"):
        LearnedTaskCovariance(lam1_grid=(0.0,)).fit(X, y, t)


@pytest.mark.parametrize("loss", ["log_loss", "poisson"])
def test_yes_no_and_count_forms_reach_the_pooled_fit_when_tasks_cannot_differ(loss):
    """With the deviations penalized away, MTRL's logistic / Poisson fit is one pooled GLM
    (its shared weights nearly free, so the L2-pooled fit at the same small penalty), and
    at moderate penalties it beats the pooled fit on grouped data in held-out deviance."""
    from netscope.multitask.linear.glm import scored_loss
    from netscope.multitask.linear.ridge import PooledRidge

    rng = np.random.default_rng(0)
    T, n = 8, 80
    X = rng.normal(size=(T * n, 2))
    t = np.repeat(np.arange(T), n)
    eta = X @ np.array([1.0, -0.7]) + rng.normal(0, 1.2, T)[t]
    y = (rng.uniform(size=T * n) < 1 / (1 + np.exp(-eta))).astype(float) if loss == "log_loss" \
        else rng.poisson(np.exp(0.5 * eta)).astype(float)
    tied = LearnedTaskCovariance(loss=loss, penalties=(1e9, 1e9), tol=1e-8).fit(X, y, t)
    pooled = PooledRidge(loss=loss, penalties=(1e-2,)).fit(X, y, t)
    np.testing.assert_allclose(tied.predict(X, t), pooled.predict(X, t), rtol=1e-3)
    train = np.arange(T * n) % 4 != 0
    free = LearnedTaskCovariance(loss=loss).fit(X[train], y[train], t[train])
    flat = PooledRidge(loss=loss).fit(X[train], y[train], t[train])

    def held(m):
        mu = m.predict(X[~train], t[~train])
        eta = np.log(mu / (1 - mu)) if loss == "log_loss" else np.log(mu)
        return scored_loss(loss, y[~train], eta).mean()

    assert held(free) < held(flat) - 0.02
    assert np.isfinite(free.predict(X[:3], ["new"] * 3)).all()
