"""Linear baselines: the closed form against a direct solve, and its limits."""

import numpy as np
import pytest

from netscope.multitask.linear.ridge import (
    MeanRegularizedRidge,
    PooledRidge,
    RidgePerTask,
    solve_mean_regularized,
    solve_per_task,
    solve_pooled,
    task_grams,
)


def _grams(tiny):
    X, y, t = tiny
    return task_grams(X, y, t, 4), (X, y, t)


@pytest.mark.parametrize("free", [None, 2])
def test_mean_regularized_equals_direct_augmented_ridge(tiny, free):
    (A, b), (X, y, t) = _grams(tiny)
    lam_s, lam_t = 0.7, 2.5
    d, T = X.shape[1], 4
    # w = [w0, v_1..v_T]; row i has x_i in the w0 block and in its task's block
    Phi = np.zeros((X.shape[0], d * (T + 1)))
    Phi[:, :d] = X
    for i, task in enumerate(t):
        Phi[i, d * (task + 1): d * (task + 2)] = X[i]
    pen = np.concatenate([np.full(d, lam_s), np.full(d * T, lam_t)])
    if free is not None:  # the shared weight of column `free` is not penalized
        pen[free] = 0.0
    w = np.linalg.solve(Phi.T @ Phi + np.diag(pen), Phi.T @ y)
    w0, V = solve_mean_regularized(A, b, lam_s, lam_t, free=free)
    np.testing.assert_allclose(w0, w[:d], atol=1e-10)
    np.testing.assert_allclose(V, w[d:].reshape(T, d), atol=1e-10)


def test_limits_are_pooled_and_per_task(tiny):
    (A, b), _ = _grams(tiny)
    w0, V = solve_mean_regularized(A, b, 1.0, 1e12)  # no task deviations: pooled
    np.testing.assert_allclose(w0 + V, np.broadcast_to(solve_pooled(A, b, 1.0), V.shape),
                               atol=1e-8)
    w0, V = solve_mean_regularized(A, b, 1e12, 1.0)  # no shared part: per task
    np.testing.assert_allclose(w0 + V, solve_per_task(A, b, 1.0), atol=1e-8)
    w0, V = solve_mean_regularized(A, b, 1.0, 1e12, free=1)
    np.testing.assert_allclose(w0 + V, np.broadcast_to(solve_pooled(A, b, 1.0, free=1), V.shape),
                               atol=1e-8)


def test_free_column_is_not_shrunk(tiny):
    """A huge penalty zeroes every weight but the free one (the intercept): per-task ridge
    then predicts each task's mean, pooled ridge the overall mean."""
    (_, _), (X, y, t) = _grams(tiny)
    Xc = np.hstack([X, np.ones((len(y), 1))])
    A, b = task_grams(Xc, y + 50.0, t, 4)
    W = solve_per_task(A, b, 1e12, free=Xc.shape[1] - 1)
    np.testing.assert_allclose(W[:, :-1], 0, atol=1e-8)
    np.testing.assert_allclose(W[:, -1], [np.mean(y[t == k] + 50) for k in range(4)])
    w = solve_pooled(A, b, 1e12, free=Xc.shape[1] - 1)
    np.testing.assert_allclose(w[-1], np.mean(y + 50))


def test_grams_match_per_task_products(tiny):
    (A, b), (X, y, t) = _grams(tiny)
    rows = t == 2
    np.testing.assert_allclose(A[2], X[rows].T @ X[rows])
    np.testing.assert_allclose(b[2], X[rows].T @ y[rows])


@pytest.mark.parametrize("cls", [RidgePerTask, PooledRidge, MeanRegularizedRidge])
def test_penalty_chosen_inside_training_rows(tiny, cls):
    X, y, t = tiny
    m = cls(grid=(0.01, 1.0, 100.0), folds=3).fit(X, y, t)
    assert m.penalties_ == m.cv_grid_[int(np.argmin(m.cv_mse_))]
    assert len(m.penalties_) == cls.n_penalties
    assert np.mean((m.predict(X, t) - y) ** 2) < np.var(y)


def test_pooled_ridge_ignores_task(tiny):
    X, y, t = tiny
    m = PooledRidge().fit(X, y, t)
    np.testing.assert_allclose(m.predict(X[:3], [0, 0, 0]), m.predict(X[:3], [3, 3, 3]))
