"""Linear baselines from the multi-task literature, in closed form.

- ``RidgePerTask``: an independent ridge regression per task;
- ``PooledRidge``: one ridge regression for all rows;
- ``MeanRegularizedRidge`` (Evgeniou & Pontil 2004): w_t = w_0 + v_t, penalty
  lam_shared * |w_0|^2 + lam_task * sum_t |v_t|^2. Solved exactly: with A_t = X_t'X_t,
  b_t = X_t'y_t and M_t = (A_t + lam_task I)^-1,
  (lam_shared I + lam_task sum_t M_t A_t) w_0 = lam_task sum_t M_t b_t,  v_t = M_t (b_t - A_t w_0).

A constant column is appended and left unpenalized, so no family is pulled toward a zero
intercept (the target need not be centred); in the mean-regularized model the shared
intercept is free and each task's deviation from it is penalized like its other weights, so a
task with few rows shrinks toward the shared intercept (a random intercept, in effect).
Penalties are chosen by K-fold validation inside the training rows
only, folds stratified by task; the grid and the chosen values are kept for reports.

Each takes ``loss="log_loss"`` (L2-logistic) and ``"poisson"``, fitted by IRLS, and the
per-task and pooled ones ``"multinomial"`` (softmax over K classes, a weight vector per
class, each penalized: ``coef_`` is then (K, T, d)), fitted by Newton's method (``glm.py``).
"""

from __future__ import annotations

import itertools

import numpy as np

from netscope.errors import NetscopeError
from netscope.multitask.base import Progress, TaskEstimator
from netscope.multitask.linear.glm import (
    LOSSES,
    absent_rates,
    check_loss,
    class_probs,
    constant_tasks,
    irls,
    mean_of,
    newton_multinomial,
    scored_loss,
    softmax,
)
from netscope.multitask.targets import KINDS

DEFAULT_GRID = tuple(float(v) for v in 10.0 ** np.arange(-3, 5.01, 0.5))


def with_constant(X: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.ones((X.shape[0], 1))])


def task_grams(X: np.ndarray, y: np.ndarray, t: np.ndarray, n_tasks: int):
    """A_t = X_t'X_t (T, d, d) and b_t = X_t'y_t (T, d)."""
    d = X.shape[1]
    A, b = np.zeros((n_tasks, d, d)), np.zeros((n_tasks, d))
    order = np.argsort(t, kind="stable")
    bounds = np.searchsorted(t[order], np.arange(n_tasks + 1))
    for k in range(n_tasks):
        rows = order[bounds[k]:bounds[k + 1]]
        A[k], b[k] = X[rows].T @ X[rows], X[rows].T @ y[rows]
    return A, b


def penalty(d: int, free: int | None) -> np.ndarray:
    """The identity, with a zero for the unpenalized column ``free`` (the constant)."""
    P = np.eye(d)
    if free is not None:
        P[free, free] = 0.0
    return P


def solve_or_least_norm(M: np.ndarray, b: np.ndarray) -> np.ndarray:
    """M^-1 b (stacked or not); where M is singular (an unpenalized intercept that no row
    pins: a task, or an inner fold, without training rows) the minimum-norm solution, which
    is what the data say, instead of an error."""
    try:
        return np.linalg.solve(M, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return (np.linalg.pinv(M) @ b[..., None])[..., 0]


def solve_per_task(A, b, lam: float, free: int | None = None) -> np.ndarray:
    """Each task's ridge solution (a task with too few rows to pin its intercept gets the
    minimum-norm one; a task with no training rows predicts 0)."""
    return solve_or_least_norm(A + lam * penalty(A.shape[1], free), b)


def solve_pooled(A, b, lam: float, free: int | None = None) -> np.ndarray:
    return solve_or_least_norm(A.sum(0) + lam * penalty(A.shape[1], free), b.sum(0))


def solve_mean_regularized(A, b, lam_shared: float, lam_task: float, free: int | None = None):
    """Exact minimizer; returns (w_0, V) with per-task weights w_0 + V[t]."""
    return next(mean_regularized_path(A, b, (lam_shared,), lam_task, free))[1:]


def mean_regularized_path(A, b, shared_grid, lam_task: float, free: int | None = None):
    """Solutions for every lam_shared at one lam_task, inverting A_t + lam_task I only once.
    ``free``: a column of w_0 left unpenalized (the shared intercept)."""
    d = A.shape[1]
    M = np.linalg.inv(A + lam_task * np.eye(d))
    MA = lam_task * (M @ A).sum(0)
    rhs = lam_task * (M @ b[..., None])[..., 0].sum(0)
    P = penalty(d, free)
    for lam_shared in shared_grid:
        w0 = solve_or_least_norm(lam_shared * P + MA, rhs)
        V = (M @ (b - A @ w0)[..., None])[..., 0]
        yield lam_shared, w0, V


def inner_folds(t: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold id per row, each task's rows dealt round-robin in a random order."""
    rng = np.random.default_rng(seed)
    fold = np.empty(t.size, dtype=np.int64)
    for task in np.unique(t):
        rows = rng.permutation(np.flatnonzero(t == task))
        fold[rows] = np.arange(rows.size) % k
    return fold


def penalty_line(names: tuple[str, ...], values, how: str) -> str:
    """'penalty on the shared weights 10, on the task deviations 100 (by 3-fold inner CV)'."""
    return ("penalty " + ", ".join(f"on {n} {v:g}" for n, v in zip(names, values, strict=True))
            + f" ({how})")


class _LinearFamily(TaskEstimator):
    """Shared machinery: penalty grid search by inner cross-validation, then a final fit."""

    n_penalties = 1
    penalty_names: tuple[str, ...] = ("the weights",)
    pins_constant_tasks = False  # per-task fits: a one-class task gets the constant model
    softmax_pooled: bool | None = None  # several classes: one softmax model for all tasks
    # (True), one per task (False), or no softmax form (None: one-vs-rest instead)

    def __init__(self, *, grid: tuple[float, ...] = DEFAULT_GRID, folds: int = 3, seed: int = 0,
                 penalties: tuple[float, ...] | None = None, loss: str = "squared_error",
                 progress: Progress | None = None) -> None:
        self.grid = grid
        self.folds = folds
        self.seed = seed
        self.penalties = penalties  # a known setting: no search (as the ensemble's refits)
        self.loss = loss  # squared_error (ridge), log_loss (logistic) or poisson
        self.progress = progress

    def _penalty(self, W: np.ndarray, penalties) -> float:
        """The penalty the solver's ridge term stands for, at weights W (T, d)."""
        raise NotImplementedError

    def _solve(self, A, b, penalties) -> np.ndarray:
        """Per-task weights (T, d) for one penalty setting."""
        raise NotImplementedError

    def _path(self, A, b):
        """(penalties, weights) for every grid point; families may share work across it."""
        for pen in itertools.product(self.grid, repeat=self.n_penalties):
            yield pen, self._solve(A, b, pen)

    def _fit(self, X, y, t, n_tasks) -> None:
        if self.folds < 2:
            raise NetscopeError(f"folds must be at least 2, got {self.folds}.")
        if self.loss == "multinomial" and self.softmax_pooled is None:
            raise NetscopeError(f"{self.label}: no softmax form; for several classes use "
                                f"OneVsRest(family=...) with loss='log_loss' members (what "
                                f"`netscope multitask run` does).")
        check_loss(self.loss, self.label, (*LOSSES, "multinomial"))
        Xc = with_constant(X)
        self.constant_tasks_ = constant_tasks(self.loss, y, t, n_tasks) \
            if self.pins_constant_tasks else np.zeros(n_tasks, bool)
        if self.loss == "multinomial":
            self.n_classes_ = int(y.max()) + 1
            self.absent_rate_ = self._rates(y, t, n_tasks)
            self.constant_tasks_ = (self.absent_rate_ > 0).any(1)
        if self.penalties is None:
            self._search(Xc, y, t, n_tasks)
        else:
            if len(self.penalties) != self.n_penalties or min(self.penalties) < 0:
                raise NetscopeError(f"{self.label}: penalties must be {self.n_penalties} "
                                    f"number(s) >= 0, got {self.penalties!r}.")
            self.penalties_ = tuple(float(v) for v in self.penalties)
        self.coef_ = self._weights(Xc, y, t, n_tasks, self.penalties_)
        if self.constant_tasks_.any() and self.progress:
            self.progress(f"{self.label}: {self.fit_summary()[-1]}")

    def _rates(self, y, t, n_tasks) -> np.ndarray:
        """Several classes: (T, K) smoothed rates of the classes a task never had (per-task
        fits only: the shared families estimate every class in every task)."""
        rates = absent_rates(y.astype(np.int64), t, n_tasks, self.n_classes_)
        return rates if self.pins_constant_tasks else np.zeros_like(rates)

    def _weights(self, Xc, y, t, n_tasks, penalties, start=None,
                 search: bool = False) -> np.ndarray:
        """The fit at one penalty setting: closed form for squared error, IRLS otherwise
        (several classes: to a looser tolerance while searching, ranking penalties only)."""
        if self.loss == "squared_error":
            A, b = task_grams(Xc, y, t, n_tasks)
            return self._solve(A, b, penalties)
        if self.loss == "multinomial":
            W, self.newton_steps_ = newton_multinomial(
                Xc, y.astype(np.int64), t, n_tasks, self.n_classes_, penalties[0],
                self.softmax_pooled, start, self._rates(y, t, n_tasks) > 0,
                tol=1e-7 if search else 1e-13)
            return W
        W, self.newton_steps_ = irls(
            Xc, y, t, n_tasks, self.loss, lambda A, b: self._solve(A, b, penalties),
            lambda W: self._penalty(W, penalties), start,
            self.constant_tasks_ if self.pins_constant_tasks else None)
        return W

    def _chosen(self) -> dict:
        return {"penalties": self.penalties_}

    def fit_summary(self) -> list[str]:
        lines = [penalty_line(self.penalty_names, self.penalties_,
                              "given" if self.penalties is not None else
                              f"by {self.folds}-fold inner CV")]
        pinned = getattr(self, "constant_tasks_", np.zeros(0, bool))
        if pinned.any() and self.loss == "multinomial":
            lines.append(f"{int(pinned.sum())} task(s) lack some classes in their training "
                         f"rows: there each missing class gets its smoothed rate, (0 + 1/2) "
                         f"/ (n + 1), and the softmax shares the rest")
        elif pinned.any():
            what = "one class" if self.loss == "log_loss" else "zero counts"
            lines.append(f"{int(pinned.sum())} task(s) have only {what} in their training "
                         f"rows: each gets the constant model (its smoothed rate, (sum + "
                         f"1/2) / (n + 1))")
        return lines

    def _search(self, Xc, y, t, n_tasks) -> None:
        """The grid point with the lowest inner cross-validated error (squared error, log
        loss or Poisson deviance)."""
        fold = inner_folds(t, self.folds, self.seed)
        errors: dict[tuple[float, ...], float] = {}
        for f in range(self.folds):
            tr, va = fold != f, fold == f
            rates = self._rates(y[tr], t[tr], n_tasks) if self.loss == "multinomial" else None
            for pen, W in self._fold_path(Xc[tr], y[tr], t[tr], n_tasks):
                if rates is None:
                    err = scored_loss(self.loss, y[va], np.einsum("nd,nd->n", Xc[va], W[t[va]]))
                else:
                    err = KINDS["multiclass"].unit_loss(y[va], self._probs(Xc[va], W, t[va],
                                                                           rates))
                errors[pen] = errors.get(pen, 0.0) + err.sum()
        combos = list(errors)
        best = int(np.argmin(list(errors.values())))
        self.penalties_ = tuple(float(v) for v in combos[best])
        self.cv_mse_ = np.array(list(errors.values())) / len(y)
        self.cv_grid_ = combos
        if self.progress:
            self.progress(f"{self.label}: {self.fit_summary()[0]}")

    def _fold_path(self, Xc, y, t, n_tasks):
        """(penalties, weights) at every grid point on one fold's training rows; IRLS fits
        warm-start from the previous point and use every other grid value (a Newton
        solve per point)."""
        if self.loss == "squared_error":
            yield from self._path(*task_grams(Xc, y, t, n_tasks))
            return
        W = None
        for pen in itertools.product(self.grid[::2], repeat=self.n_penalties):
            W = self._weights(Xc, y, t, n_tasks, pen, W, search=True)
            yield pen, W

    @staticmethod
    def _probs(Xc, W, t, rates) -> np.ndarray:
        """Class probabilities of rows ``Xc`` (with the constant) under weights (K, T, d)."""
        return class_probs(np.einsum("nd,knd->nk", Xc, W[:, t]), rates[t])

    def _predict(self, X, t) -> np.ndarray:
        if self.loss == "multinomial":
            return self._probs(with_constant(X), self.coef_, t, self.absent_rate_)
        return mean_of(self.loss, np.einsum("nd,nd->n", with_constant(X), self.coef_[t]))

    def _predict_population(self, X) -> np.ndarray:
        """The mean of the tasks' weights (for ridge, the average of their predictions)."""
        if self.loss == "multinomial":
            return softmax(with_constant(X) @ self.population_coef().T)
        return mean_of(self.loss, with_constant(X) @ self.population_coef())

    def population_coef(self) -> np.ndarray:
        """The weights of a task never seen: (d,), or (K, d) for several classes, where a
        class's weights are averaged over the tasks that had it."""
        if self.loss != "multinomial":
            return self.coef_.mean(0)
        had = (self.absent_rate_ == 0).T[..., None]  # (K, T, 1)
        return (self.coef_ * had).sum(1) / np.maximum(had.sum(1), 1)

    def _state(self):
        import torch

        extra = {"absent": torch.from_numpy(self.absent_rate_)} \
            if self.loss == "multinomial" else {}
        return {"coef": torch.from_numpy(self.coef_),
                "penalties": torch.tensor(self.penalties_, dtype=torch.float64), **extra}

    def _set_state(self, state):
        self.coef_ = state["coef"].numpy()
        self.penalties_ = tuple(state["penalties"].tolist())
        if "absent" in state:
            self.absent_rate_ = state["absent"].numpy()
            self.n_classes_ = self.absent_rate_.shape[1]


def _norms(W: np.ndarray) -> float:
    """Squared norm of the weights without the last column (the unpenalized constant)."""
    return float((W[..., :-1] ** 2).sum())


class RidgePerTask(_LinearFamily):
    label = "ridge per task"
    pins_constant_tasks = True
    softmax_pooled = False

    def _solve(self, A, b, penalties):
        return solve_per_task(A, b, penalties[0], free=A.shape[1] - 1)

    def _penalty(self, W, penalties) -> float:
        return 0.5 * penalties[0] * _norms(W)


class PooledRidge(_LinearFamily):
    label = "pooled ridge"
    softmax_pooled = True

    def _solve(self, A, b, penalties):
        return np.tile(solve_pooled(A, b, penalties[0], free=A.shape[1] - 1), (b.shape[0], 1))

    def _penalty(self, W, penalties) -> float:
        return 0.5 * penalties[0] * _norms(W[0])


class MeanRegularizedRidge(_LinearFamily):
    label = "mean-regularized MTL ridge"
    n_penalties = 2
    penalty_names = ("the shared weights", "the task deviations")

    def _solve(self, A, b, penalties):
        w0, V = solve_mean_regularized(A, b, *penalties, free=A.shape[1] - 1)
        self.shared_coef_ = w0  # the last solve is the final fit's: a new task's weights
        return w0 + V

    @staticmethod
    def _shared(W, penalties) -> np.ndarray:
        """The w_0 that minimizes the two penalties given the tasks' weights W (T, d): the
        shared weights of the fit, since w_0 enters nothing else (w_0's constant free)."""
        lam_s, lam_t = penalties
        P = np.ones(W.shape[1])
        P[-1] = 0.0
        return lam_t * W.sum(0) / (lam_s * P + W.shape[0] * lam_t)

    def _penalty(self, W, penalties) -> float:
        """min over w_0 of the two penalties with v_t = w_t - w_0."""
        lam_s, lam_t = penalties
        w0 = self._shared(W, penalties)
        P = np.ones(W.shape[1])
        P[-1] = 0.0
        return 0.5 * (lam_s * float((P * w0 * w0).sum()) + lam_t * float(((W - w0) ** 2).sum()))

    def population_coef(self) -> np.ndarray:
        """w_0: a new task's deviation v_t is at its mean, zero."""
        return self.shared_coef_ if hasattr(self, "shared_coef_") else self.coef_.mean(0)

    def _state(self):
        import torch

        return {**super()._state(), "shared": torch.from_numpy(self.population_coef())}

    def _set_state(self, state):
        super()._set_state(state)
        if "shared" in state:
            self.shared_coef_ = state["shared"].numpy()

    def _path(self, A, b):
        for lam_task in self.grid:
            for lam_shared, w0, V in mean_regularized_path(A, b, self.grid, lam_task,
                                                           free=A.shape[1] - 1):
                yield (lam_shared, lam_task), w0 + V
