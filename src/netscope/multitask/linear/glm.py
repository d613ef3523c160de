"""Penalized logistic and Poisson regression for the linear families, by iteratively
reweighted least squares (IRLS).

Each Newton step of a GLM with an L2 penalty is a weighted ridge problem: with the
working weights D = dmu/deta and working response z = eta + (y - mu) / D, the step solves
(X'DX + lam P) w = X'Dz. So every linear family (per task, pooled, mean-regularized) takes
the same penalized least-squares solver it uses for regression, fed the weighted per-task
grams, and Newton's quadratic convergence does the rest (about 5-15 steps). A step that
raises the penalized loss is halved. A task whose training rows are all one class (or all
zero counts) gets the constant model with a smoothed rate, (sum + 1/2) / (n + 1), since its
own maximum-likelihood intercept is infinite.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from netscope.errors import NetscopeError
from netscope.multitask.targets import of_loss

LOSSES = ("squared_error", "log_loss", "poisson")
ETA_MAX = 30.0  # linear predictors are kept in [-30, 30] (probabilities 1e-13 from 0 or 1)


def check_loss(loss: str, name: str) -> None:
    if loss not in LOSSES:
        raise NetscopeError(f"{name}: loss must be one of {', '.join(LOSSES)}, got {loss!r}.")


def mean_of(loss: str, eta: np.ndarray) -> np.ndarray:
    """The inverse link: probability (logistic), rate (exp) or the value itself."""
    if loss == "log_loss":
        return 0.5 * (1.0 + np.tanh(0.5 * eta))
    if loss == "poisson":
        return np.exp(np.clip(eta, -ETA_MAX, ETA_MAX))
    return eta


def unit_loss(loss: str, y: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Negative log-likelihood per row (up to terms without eta), on the linear predictor."""
    if loss == "log_loss":
        return np.logaddexp(0.0, eta) - y * eta
    if loss == "poisson":
        return np.exp(np.clip(eta, -ETA_MAX, ETA_MAX)) - y * eta
    return 0.5 * (y - eta) ** 2


def scored_loss(loss: str, y: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Each row's validation loss: log loss with probabilities clipped to 1e-15, Poisson
    deviance, or squared error."""
    return of_loss(loss).unit_loss(y, mean_of(loss, eta))


def weighted_grams(X: np.ndarray, w: np.ndarray, z: np.ndarray, order: np.ndarray,
                   bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A_t = X_t' diag(w_t) X_t and b_t = X_t' diag(w_t) z_t for every task (rows grouped
    by ``order``, task k's rows at ``order[bounds[k]:bounds[k + 1]]``)."""
    T, d = len(bounds) - 1, X.shape[1]
    A, b = np.zeros((T, d, d)), np.zeros((T, d))
    for k in range(T):
        rows = order[bounds[k]:bounds[k + 1]]
        if rows.size:
            Xw = X[rows] * w[rows, None]
            A[k], b[k] = Xw.T @ X[rows], Xw.T @ z[rows]
    return A, b


def constant_tasks(loss: str, y: np.ndarray, t: np.ndarray, n_tasks: int) -> np.ndarray:
    """Tasks whose rows are all one class (log loss) or all zero (Poisson)."""
    n = np.bincount(t, minlength=n_tasks)
    s = np.bincount(t, weights=y, minlength=n_tasks)
    if loss == "log_loss":
        return (n > 0) & ((s == 0) | (s == n))
    if loss == "poisson":
        return (n > 0) & (s == 0)
    return np.zeros(n_tasks, bool)


def smoothed_link(loss: str, y: np.ndarray, t: np.ndarray, n_tasks: int) -> np.ndarray:
    """Each task's linear predictor of its smoothed rate (sum + 1/2) / (n + 1)."""
    n = np.bincount(t, minlength=n_tasks)
    rate = (np.bincount(t, weights=y, minlength=n_tasks) + 0.5) / (n + 1.0)
    return np.log(rate / (1 - rate)) if loss == "log_loss" else np.log(rate)


def irls(X: np.ndarray, y: np.ndarray, t: np.ndarray, n_tasks: int, loss: str,
         solve: Callable[[np.ndarray, np.ndarray], np.ndarray], penalty: Callable[
             [np.ndarray], float], W0: np.ndarray | None = None, constant: np.ndarray | None = None,
         max_iter: int = 50, tol: float = 1e-10) -> tuple[np.ndarray, int]:
    """Per-task weights (T, d) minimizing sum of ``loss`` + ``penalty(W)``; ``solve(A, b)``
    is the family's penalized least-squares solver for weighted grams, ``W0`` a start.
    ``constant`` tasks are pinned to their smoothed rate (weights 0, intercept = the last
    column). Returns the weights and the Newton steps taken."""
    order = np.argsort(t, kind="stable")
    bounds = np.searchsorted(t[order], np.arange(n_tasks + 1))
    d = X.shape[1]
    W = np.zeros((n_tasks, d)) if W0 is None else W0.copy()
    pinned = None
    if constant is not None and constant.any():
        pinned = smoothed_link(loss, y, t, n_tasks)[constant]
        W[constant] = 0.0
        W[constant, -1] = pinned

    def objective(W: np.ndarray) -> float:
        eta = np.einsum("nd,nd->n", X, W[t])
        return float(unit_loss(loss, y, eta).sum() + penalty(W))

    current = objective(W)
    for step in range(1, max_iter + 1):
        eta = np.clip(np.einsum("nd,nd->n", X, W[t]), -ETA_MAX, ETA_MAX)
        mu = mean_of(loss, eta)
        D = np.maximum(mu * (1 - mu) if loss == "log_loss" else mu, 1e-10)
        A, b = weighted_grams(X, D, eta + (y - mu) / D, order, bounds)
        if pinned is not None:  # a pinned task's system returns its constant exactly
            A[constant] = np.eye(d)
            b[constant] = 0.0
            b[constant, -1] = pinned
        new = solve(A, b)
        if pinned is not None:
            new[constant] = W[constant]
        value = objective(new)
        halvings = 0
        while not value <= current + 1e-12 * abs(current) and halvings < 30:
            new = 0.5 * (W + new)  # a Newton step too long for the logistic's tails: halve
            value = objective(new)
            halvings += 1
        change = np.abs(new - W).max()
        W, previous, current = new, current, value
        if change < 1e-8 or abs(previous - current) <= tol * max(abs(current), 1.0):
            return W, step
    return W, max_iter
