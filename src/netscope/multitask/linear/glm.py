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
GRAM_BLOCK = 1 << 22  # numbers of row outer products held at once by weighted_grams
ETA_MAX = 30.0  # linear predictors are kept in [-30, 30] (probabilities 1e-13 from 0 or 1)


def check_loss(loss: str, name: str, allowed: tuple[str, ...] = LOSSES) -> None:
    if loss not in allowed:
        raise NetscopeError(f"{name}: loss must be one of {', '.join(allowed)}, got {loss!r}.")


def mean_of(loss: str, eta: np.ndarray) -> np.ndarray:
    """The inverse link: probability (logistic), rate (exp), class probabilities (softmax
    of (n, K) outputs) or the value itself."""
    if loss == "multinomial":
        return softmax(eta)
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
    step = max(1, GRAM_BLOCK // (d * d))  # rows per block of outer products in memory
    first = 0
    while first < T:  # tasks in blocks of about ``step`` rows, each summed by reduceat
        last = max(first + 1, int(np.searchsorted(bounds, bounds[first] + step, "right")) - 1)
        last = min(last, T)
        rows = order[bounds[first]:bounds[last]]
        if rows.size:
            Xs = X[rows]
            Xw = Xs * w[rows, None]
            sizes = np.diff(bounds[first:last + 1])
            has = np.flatnonzero(sizes > 0)
            starts = (bounds[first:last] - bounds[first])[has]
            A[first + has] = np.add.reduceat(Xw[:, :, None] * Xs[:, None, :], starts)
            b[first + has] = np.add.reduceat(Xw * z[rows, None], starts)
        first = last
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


# -- several classes: the multinomial (softmax) likelihood ---------------------------------
def task_sums(V: np.ndarray, order: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Each task's sum of the rows of V (rows grouped by ``order`` and ``bounds``)."""
    out = np.zeros((len(bounds) - 1, *V.shape[1:]))
    has = np.flatnonzero(bounds[1:] > bounds[:-1])
    if has.size:
        out[has] = np.add.reduceat(V[order], bounds[:-1][has])
    return out


def softmax(eta: np.ndarray) -> np.ndarray:
    """Row-wise softmax; logits of -inf (classes left out) get probability 0."""
    top = eta.max(1, keepdims=True)
    e = np.exp(eta - top)
    return e / e.sum(1, keepdims=True)


def absent_rates(codes: np.ndarray, t: np.ndarray, n_tasks: int, k: int) -> np.ndarray:
    """(T, K): for a class with no training rows in a task, its smoothed rate there,
    (0 + 1/2) / (n + 1) as for a one-class yes/no task; 0 for the classes a task has."""
    n = np.bincount(t, minlength=n_tasks).astype(np.float64)
    counts = np.zeros((n_tasks, k))
    np.add.at(counts, (t, codes), 1.0)
    return np.where(counts == 0, 0.5 / (n[:, None] + 1.0), 0.0)


def class_probs(eta: np.ndarray, rates: np.ndarray | None = None) -> np.ndarray:
    """Probabilities from (n, K) logits; ``rates`` (n, K) > 0 marks classes a row's task
    never had, which get that rate while the others share the rest by softmax."""
    if rates is None or not rates.any():
        return softmax(eta)
    P = softmax(np.where(rates > 0, -np.inf, eta))
    return P * (1.0 - rates.sum(1, keepdims=True)) + rates


def newton_multinomial(X: np.ndarray, codes: np.ndarray, t: np.ndarray, n_tasks: int,
                       k: int, lam: float, pooled: bool, W0: np.ndarray | None = None,
                       absent: np.ndarray | None = None, max_iter: int = 100,
                       tol: float = 1e-13) -> tuple[np.ndarray, int]:
    """Per-class, per-task weights (K, T, d) of the L2-penalized multinomial logistic
    regression (penalty lam / 2 on every class's weights but the last column, the free
    constant; scikit-learn's parametrization), one model per task or one ``pooled`` for all,
    by Newton's method on the full (K d) x (K d) Hessian (quadratic convergence), steps
    halved when they raise the objective. The intercepts are identified only up to a common
    shift, along which the gradient is zero: a tiny ridge on them keeps the step finite.
    ``absent`` (T, K): classes a task never had are left out of its softmax (weights 0)."""
    order = np.argsort(t, kind="stable")
    bounds = np.searchsorted(t[order], np.arange(n_tasks + 1))
    d = X.shape[1]
    W = np.zeros((k, n_tasks, d)) if W0 is None else W0.copy()
    out = np.zeros((n_tasks, k), bool) if absent is None else absent
    rows_out = out[t]
    Y = np.eye(k)[codes]
    pen = np.ones(d)
    pen[-1] = 0.0
    ridge = np.tile(lam * pen + 1e-10 * (1 - pen), k)  # (K d,) the penalty's diagonal

    def logits(W: np.ndarray) -> np.ndarray:
        return np.where(rows_out, -np.inf, np.einsum("nd,knd->nk", X, W[:, t]))

    def objective(W: np.ndarray) -> float:
        eta = logits(W)
        top = eta.max(1)
        lse = top + np.log(np.exp(eta - top[:, None]).sum(1))
        share = W[:, :1] if pooled else W
        return float((lse - eta[np.arange(len(codes)), codes]).sum()
                     + 0.5 * lam * (share[..., :-1] ** 2).sum())

    current = objective(W)
    for step in range(1, max_iter + 1):
        P = softmax(logits(W))
        H = np.zeros((n_tasks, k, d, k, d))
        for a in range(k):
            for b in range(a, k):
                w = P[:, a] * ((a == b) - P[:, b])
                H[:, a, :, b, :] = weighted_grams(X, w, w, order, bounds)[0]
                H[:, b, :, a, :] = H[:, a, :, b, :].transpose(0, 2, 1)
        H = H.reshape(n_tasks, k * d, k * d)
        g = task_sums((Y - P)[:, :, None] * X[:, None, :], order, bounds).reshape(n_tasks, -1)
        if pooled:
            H, g = H.sum(0, keepdims=True), g.sum(0, keepdims=True)
        theta = W.transpose(1, 0, 2).reshape(n_tasks, k * d)[:len(g)]
        g -= ridge * theta  # the penalized log-likelihood's gradient and Hessian
        H += np.diag(ridge)
        drop = out.repeat(d, 1) if not pooled else np.zeros((1, k * d), bool)
        H = np.where(drop[:, :, None] | drop[:, None, :], 0.0, H) + \
            np.eye(k * d) * drop[:, :, None]  # a left-out class: no step
        g = np.where(drop, 0.0, g)
        delta = np.linalg.solve(H, g[..., None])[..., 0]
        if pooled:
            delta = np.repeat(delta, n_tasks, 0)
        delta = delta.reshape(n_tasks, k, d).transpose(1, 0, 2)
        new, halvings = W + delta, 0
        value = objective(new)
        while not value <= current + 1e-12 * abs(current) and halvings < 30:
            delta *= 0.5
            new = W + delta
            value = objective(new)
            halvings += 1
        change = float(np.abs(new - W).max())
        W, previous, current = new, current, value
        if change < 1e-10 or abs(previous - current) <= tol * max(abs(current), 1.0):
            return W, step
    return W, max_iter
