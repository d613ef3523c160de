"""Multi-task relationship learning (Zhang & Yeung 2010): a linear model per task whose
weights share a learned task covariance.

w_t = w_0 + v_t, with V = [v_1 .. v_T] (d x T) and the constant among the features, so the
intercepts are coupled too:
min  sum_t |y_t - X_t w_t|^2 + lam_0 |w_0|^2 + lam_1 |V|^2 + lam_2 tr(V Omega^-1 V')
subject to Omega >= 0, tr(Omega) = 1.

The problem is jointly convex; it is solved by alternating: for fixed Omega, V = U Omega^(1/2)
turns the coupling term into lam_2 |U|^2, so conjugate gradients on (w_0, U) never need
Omega's inverse (Omega has rank <= d < T here, so the inverse does not exist); for fixed V,
Omega = (V'V)^(1/2) / tr((V'V)^(1/2)) in closed form. Both penalties come from inner
validation on the training rows. ``correlations()`` is what the report draws.

Yes/no and count targets (``loss="log_loss"`` / ``"poisson"``) replace the squared error by
the deviance: each IRLS step is the same problem on the working response with weighted
grams (``glm.py``), Omega warm-started from the step before.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from netscope.errors import NetscopeError
from netscope.multitask.base import Progress, TaskEstimator, TaskRelations
from netscope.multitask.linear.glm import (
    ETA_MAX,
    check_loss,
    mean_of,
    scored_loss,
    weighted_grams,
)
from netscope.multitask.linear.linalg import covariance_to_correlation
from netscope.multitask.linear.ridge import inner_folds, penalty_line, task_grams
from netscope.perf import blas_threads

LAM1_GRID = (1.0, 10.0, 100.0, 1000.0)
LAM2_GRID = (0.1, 1.0, 10.0, 100.0)
DENSE_TASKS = 1000  # above this many tasks the report maps the tasks instead of a T x T map
LAM_SHARED = 1e-2  # the shared weights are nearly free (thousands of rows inform them)
MAX_IRLS = 30  # Newton steps of a yes/no or count fit


class LearnedTaskCovariance(TaskEstimator):
    """Per-task linear models tied by a learned T x T task covariance (MTRL)."""

    label = "learned task covariance (MTRL)"

    def __init__(self, *, lam1_grid: tuple[float, ...] = LAM1_GRID,
                 lam2_grid: tuple[float, ...] = LAM2_GRID, folds: int = 3, outer: int = 30,
                 tol: float = 1e-3, seed: int = 0, penalties: tuple[float, float] | None = None,
                 loss: str = "squared_error", progress: Progress | None = None) -> None:
        self.lam1_grid = lam1_grid
        self.lam2_grid = lam2_grid
        self.folds = folds
        self.outer = outer
        self.tol = tol
        self.seed = seed
        self.penalties = penalties  # a known setting: no search
        self.loss = loss  # squared_error, log_loss (yes/no) or poisson (counts)
        self.progress = progress

    def _fit(self, X, y, t, n_tasks) -> None:
        check_loss(self.loss, self.label)
        grids = (self.lam1_grid, self.lam2_grid)
        if self.folds < 2 or min(min(g, default=0) for g in grids) <= 0:
            raise NetscopeError("learned task covariance: needs folds >= 2 and penalty grids of "
                                f"numbers > 0, got folds={self.folds}, grids={grids!r}.")
        if self.penalties is None:
            self._search(X, y, t, n_tasks, grids)
        elif len(self.penalties) != 2 or min(self.penalties) <= 0:
            raise NetscopeError(f"learned task covariance: penalties must be 2 numbers > 0, "
                                f"got {self.penalties!r}.")
        else:
            self.penalties_ = tuple(float(v) for v in self.penalties)
        W, b, omega = self._solve(X, y, t, n_tasks, self.penalties_, None)
        self.coef_, self.intercept_ = W.T, b
        self.task_factor_, self.task_cov_scale_ = omega.factor(), omega.a

    def _search(self, X, y, t, n_tasks, grids) -> None:
        """Both penalties by inner cross-validation (warm-started along the grid)."""
        fold = inner_folds(t, self.folds, self.seed)
        errors: dict[tuple[float, float], float] = {}
        for f in range(self.folds):
            tr, va = fold != f, fold == f
            stats = _stats(X[tr], y[tr], t[tr], n_tasks) if self.loss == "squared_error" \
                else None
            warm = None
            for pen in itertools.product(*grids):
                W, b, omega = self._solve(X[tr], y[tr], t[tr], n_tasks, pen, warm, stats)
                warm = omega
                eta = np.einsum("nd,nd->n", X[va], W.T[t[va]]) + b[t[va]]
                errors[pen] = errors.get(pen, 0.0) + scored_loss(self.loss, y[va], eta).sum()
        self.penalties_ = min(errors, key=errors.get)
        self.cv_mse_ = {k: v / len(y) for k, v in errors.items()}
        if self.progress:
            self.progress(f"learned task covariance: {self.fit_summary()[0]}")

    def _solve(self, X, y, t, n_tasks, pen, omega, stats=None):
        """(W (d, T), intercepts, Omega) at one penalty setting: the least-squares problem,
        or IRLS on it for the deviance of yes/no and count targets."""
        if self.loss == "squared_error":
            return solve_mtrl(stats or _stats(X, y, t, n_tasks), *pen, self.outer, self.tol,
                              omega)
        Xc = np.hstack([X, np.ones((len(y), 1))])
        order = np.argsort(t, kind="stable")
        bounds = np.searchsorted(t[order], np.arange(n_tasks + 1))
        W = np.zeros((Xc.shape[1], n_tasks))
        for step in range(1, MAX_IRLS + 1):
            self.newton_steps_ = step
            eta = np.clip(np.einsum("nd,nd->n", Xc, W.T[t]), -ETA_MAX, ETA_MAX)
            mu = mean_of(self.loss, eta)
            D = np.maximum(mu * (1 - mu) if self.loss == "log_loss" else mu, 1e-10)
            A, c = weighted_grams(Xc, D, eta + (y - mu) / D, order, bounds)
            Wn, bn, omega = solve_mtrl(_Stats(A, c), *pen, self.outer, self.tol, omega)
            new = np.vstack([Wn, bn[None]])
            change, W = float(np.abs(new - W).max()), new
            if change < 1e-6:
                break
        return W[:-1], W[-1], omega

    def _chosen(self) -> dict:
        return {"penalties": self.penalties_}

    def fit_summary(self) -> list[str]:
        return [penalty_line(("the deviations' size", "their task coupling"), self.penalties_,
                             "given" if self.penalties is not None else
                             f"by {self.folds}-fold inner CV")]

    def task_covariance(self) -> np.ndarray:
        """The learned T x T task covariance (dense: for a few thousand tasks at most)."""
        F = self.task_factor_
        return F @ F.T + self.task_cov_scale_ * np.eye(F.shape[0])

    def correlations(self) -> np.ndarray:
        """Learned task correlations (T x T); 0 for a task with no variance, never NaN."""
        return covariance_to_correlation(self.task_covariance())

    def task_relations(self) -> TaskRelations:
        if len(self.task_factor_) > DENSE_TASKS:  # the tasks' coordinates, not T x T
            F = self.task_factor_
            norm = np.sqrt((F * F).sum(1) + self.task_cov_scale_)
            return TaskRelations("embedding", F / np.where(norm > 0, norm, 1.0)[:, None],
                                 "learned task correlations (MTRL)", "mtrl")
        return TaskRelations("correlation", self.correlations(), "learned task correlations "
                             "(MTRL)", "mtrl")

    def _predict(self, X, t) -> np.ndarray:
        return mean_of(self.loss, np.einsum("nd,nd->n", X, self.coef_[t]) + self.intercept_[t])

    def _predict_population(self, X) -> np.ndarray:
        """The mean task's weights (for numbers, the average of the tasks' predictions)."""
        return mean_of(self.loss, X @ self.coef_.mean(0) + self.intercept_.mean())

    def _state(self):
        return {"coef": torch.from_numpy(self.coef_),
                "intercept": torch.from_numpy(self.intercept_),
                "task_factor": torch.from_numpy(np.ascontiguousarray(self.task_factor_)),
                "task_cov_scale": torch.tensor(self.task_cov_scale_, dtype=torch.float64),
                "penalties": torch.tensor(self.penalties_, dtype=torch.float64)}

    def _set_state(self, state):
        self.coef_ = state["coef"].numpy()
        self.intercept_ = state["intercept"].numpy()
        if "task_cov" in state:  # saved before the covariance was kept as a factor
            vals, vecs = np.linalg.eigh(state["task_cov"].numpy())
            self.task_factor_ = vecs * np.sqrt(np.clip(vals, 0, None))
            self.task_cov_scale_ = 0.0
        else:
            self.task_factor_ = state["task_factor"].numpy()
            self.task_cov_scale_ = float(state["task_cov_scale"])
        self.penalties_ = tuple(state["penalties"].tolist())


class _Stats:
    """Per-task grams of [X, 1]: A_t (T, d, d) and c_t (T, d)."""

    def __init__(self, A, c) -> None:
        self.A, self.c = A, c


def _stats(X, y, t, n_tasks) -> _Stats:
    return _Stats(*task_grams(np.hstack([X, np.ones((len(y), 1))]), y, t, n_tasks))


class TaskMetric:
    """a I + Q diag(r) Q' (Q: T x k, orthonormal columns), the form every task covariance
    here takes: I/T at the start, rank <= d after (Omega = (V'V)^(1/2) / tr). Products,
    square roots and distances in O(T k^2), never a T x T array, so 10,000 tasks cost
    megabytes, not the 800 MB of one dense matrix."""

    __array_ufunc__ = None  # ``ndarray @ TaskMetric`` defers to __rmatmul__

    def __init__(self, a: float, Q: np.ndarray, r: np.ndarray) -> None:
        self.a, self.Q, self.r = float(a), Q, r

    @classmethod
    def identity(cls, T: int, a: float) -> TaskMetric:
        return cls(a, np.zeros((T, 0)), np.zeros(0))

    def __rmatmul__(self, X: np.ndarray) -> np.ndarray:
        out = ((X @ self.Q) * self.r) @ self.Q.T
        return out + self.a * X if self.a else out

    def _map(self, f) -> TaskMetric:
        """f applied to the eigenvalues (f(a) on the complement of Q)."""
        fa = f(np.array([self.a]))[0] if self.a else 0.0
        return TaskMetric(fa, self.Q, f(self.a + self.r) - fa)

    def sqrt(self) -> TaskMetric:
        return self._map(np.sqrt)

    def pinv_sqrt(self) -> TaskMetric:
        return self._map(lambda v: np.where(v > 1e-12 * max(float(v.max()), 1e-300),
                                            1.0 / np.sqrt(np.maximum(v, 1e-300)), 0.0))

    def inner(self, other: TaskMetric) -> float:
        """tr(A B)."""
        T = self.Q.shape[0]
        M = self.Q.T @ other.Q
        return (self.a * other.a * T + self.a * other.r.sum() + other.a * self.r.sum()
                + float((self.r[:, None] * M * M * other.r[None, :]).sum()))

    def change(self, old: TaskMetric) -> float:
        """|self - old|_F / |old|_F."""
        d2 = self.inner(self) + old.inner(old) - 2 * self.inner(old)
        return float(np.sqrt(max(d2, 0.0) / max(old.inner(old), 1e-300)))

    def factor(self) -> np.ndarray:
        """F with the low-rank part = F F' (T x k)."""
        return self.Q * np.sqrt(np.maximum(self.r, 0.0))

    def dense(self) -> np.ndarray:
        F = self.factor()
        return F @ F.T + self.a * np.eye(self.Q.shape[0])


def solve_mtrl(stats: _Stats, lam1: float, lam2: float, outer: int = 30, tol: float = 1e-4,
               omega: TaskMetric | None = None, lam0: float = LAM_SHARED):
    """Alternating minimization; returns (W (d, T), intercepts (T,), Omega). Each task's
    weights are a shared w0 plus a deviation v_t; the deviations are coupled. Omega =
    (V'V)^(1/2) / tr has rank <= d, so it, its square root and the root's pseudo-inverse
    all come from one thin SVD of V (d x T), kept as ``TaskMetric``s."""
    T, d = stats.c.shape
    omega = omega or TaskMetric.identity(T, 1.0 / T)
    S = omega.sqrt()
    w0, U = np.zeros(d), np.zeros((d, T))
    with blas_threads(1):  # small products: threads only contend
        for _ in range(outer):
            w0, U = _solve_cg(stats, S, omega, lam0, lam1, lam2, w0, U)
            V = U @ S
            new = _omega_from(V)
            if new is None:  # every deviation is zero: the tasks are one
                break
            U = V @ new.pinv_sqrt()  # the same deviations V as the warm start under new Omega
            change = new.change(omega)
            omega, S = new, new.sqrt()
            if change < tol:
                break
        w0, U = _solve_cg(stats, S, omega, lam0, lam1, lam2, w0, U)
    W = w0[:, None] + U @ S
    return W[:-1], W[-1], omega


def _omega_from(V: np.ndarray) -> TaskMetric | None:
    """Omega = (V'V)^(1/2) / tr((V'V)^(1/2)) from the thin SVD V = P diag(s) Q'."""
    _, sv, Qt = np.linalg.svd(V, full_matrices=False)
    total = sv.sum()
    if total <= 0:
        return None
    return TaskMetric(0.0, Qt.T, sv / total)


def _sqrt_psd(M: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((M + M.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def _solve_cg(stats: _Stats, S, omega, lam0, lam1, lam2, w0, U, iters: int = 300,
              rtol: float = 1e-7):
    """Conjugate gradients for fixed Omega in (w0, U), with V = U S: the normal equations
    sum_t A_t w_t + lam0 w0 = sum_t c_t and [A_t w_t]_t S + lam1 U Omega + lam2 U = C S."""
    T = stats.c.shape[0]

    def H(x):
        w, u = x[:, 0], x[:, 1:]
        AW = np.matmul(stats.A, (w[:, None] + u @ S).T[:, :, None])[..., 0].T  # A_t w_t
        return np.hstack([(AW.sum(1) + lam0 * w)[:, None], AW @ S + lam1 * u @ omega + lam2 * u])

    rhs = np.hstack([stats.c.sum(0)[:, None], stats.c.T @ S])
    x = np.hstack([w0[:, None], U])
    r = rhs - H(x)
    p = r.copy()
    rr = float((r * r).sum())
    stop = rtol * max(float((rhs * rhs).sum()), 1e-300)
    for _ in range(iters):
        if rr <= stop:
            break
        Hp = H(p)
        alpha = rr / float((p * Hp).sum())
        x += alpha * p
        r -= alpha * Hp
        rr_new = float((r * r).sum())
        p = r + (rr_new / rr) * p
        rr = rr_new
    assert x.shape[1] == T + 1
    return x[:, 0], x[:, 1:]
