"""A weighted average of linear multi-task models and boosted trees.

They make different errors (the linear models share strength across tasks, the trees find
interactions and thresholds), so an average beats each. The weights (non-negative, summing
to one) minimize the squared error on an inner validation share of each task's training
rows, predicted by members fit on the rest; on small data (under ``CROSS_FIT_BELOW`` rows)
every row is predicted that way, by K-fold cross-fitting, because a 20% share of a few
hundred rows weighs the members at random. The final members are fit on all training rows
(or taken already fitted from the comparison, on the same rows); the held-out fits reuse what
their searches chose (``settled()``) instead of searching again.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import nnls

from netscope.errors import NetscopeError
from netscope.multitask.base import Progress, TaskEstimator
from netscope.multitask.linear.glm import LOSSES, check_loss
from netscope.multitask.linear.mixed import MixedEffects
from netscope.multitask.linear.ridge import MeanRegularizedRidge, inner_folds
from netscope.multitask.linear.task_covariance import LearnedTaskCovariance
from netscope.multitask.targets import of_loss
from netscope.multitask.trees.boosted import BoostedTrees

MEMBERS: dict[str, type[TaskEstimator]] = {
    "mtl-ridge": MeanRegularizedRidge, "mixed-effects": MixedEffects,
    "boosted-trees": BoostedTrees, "learned-task-covariance": LearnedTaskCovariance,
}


CROSS_FIT_BELOW = 5000  # training rows under which the weights come from K-fold cross-fitting
# K: members refit on 90% of the rows. With 5 folds (80%) the trees, which gain more from
# more rows than the linear members, were underweighted: on grouped data with a nonlinearity
# the ensemble fell 0.34 points of explained variance below the trees (0.20 with 10 folds;
# tests/multitask/test_ensemble.py)
CROSS_FOLDS = 10


class Ensemble(TaskEstimator):
    """Convex combination of member families, weights from held-out training rows."""

    label = "ensemble"

    def __init__(self, *,
                 members: tuple[str, ...] = ("mtl-ridge", "mixed-effects", "boosted-trees"),
                 validation: float = 0.2, folds: int | None = None, seed: int = 0,
                 loss: str = "squared_error", progress: Progress | None = None) -> None:
        self.members = members
        self.validation = validation
        self.folds = folds  # K-fold cross-fitting; None: 10 below CROSS_FIT_BELOW rows, else
        self.seed = seed  # one validation share (the share: ``validation``)
        self.loss = loss  # the members' loss, and what the weights minimize
        self.progress = progress

    def _build(self, key: str) -> TaskEstimator:
        """A member as the registry builds it for this loss, with this seed."""
        from netscope.multitask.families import FAMILIES
        from netscope.multitask.settings import Settings

        return FAMILIES[key].for_kind(of_loss(self.loss).name).build(Settings(seed=self.seed))

    def _fit(self, X, y, t, n_tasks) -> None:
        self._check_params()
        self.members_ = [self._given.get(k) or self._build(k).fit(X, y, t) for k in self.members]
        held, P = self._held_out(X, y, t)
        self.weights_ = simplex_weights(P, y[held], self.loss)
        kind = of_loss(self.loss)
        self.validation_loss_ = {k: float(np.mean(kind.unit_loss(y[held], P[..., i])))
                                 for i, k in enumerate(self.members)}
        self.validation_loss_["ensemble"] = float(np.mean(kind.unit_loss(y[held],
                                                                         P @ self.weights_)))
        if self.progress:
            self.progress(f"ensemble: {self.fit_summary()[0]}, {int(held.sum())} rows")

    def fit_summary(self) -> list[str]:
        shown = ", ".join(f"{k} {w:.2f}" for k, w in zip(self.members, self.weights_,
                                                          strict=True))
        scheme = getattr(self, "scheme_", None)
        return [f"weights {shown}" + (f" (from held-out training rows, {scheme})"
                                      if scheme else "")]

    def _held_out(self, X, y, t) -> tuple[np.ndarray, np.ndarray]:
        """Which training rows were held out, and each member's predictions for them from a
        copy fit without them. A task's rows are dealt round-robin to the folds and tasks
        with one row are never held out, so every fit sees every task."""
        folds = self.folds or (CROSS_FOLDS if len(y) < CROSS_FIT_BELOW else None)
        eligible = np.bincount(t)[t] >= 2
        if folds is None:
            fold = inner_folds(t, max(2, round(1 / self.validation)), self.seed + 1)
            parts = [(fold == 0) & eligible]
            self.scheme_ = f"one {self.validation:.0%} share"
        else:
            fold = inner_folds(t, folds, self.seed + 1)
            parts = [(fold == f) & eligible for f in range(folds)]
            self.scheme_ = f"{folds}-fold cross-fitting"
        if not parts[0].any():
            raise NetscopeError("ensemble: no task has 2 training rows, so there are no inner "
                                "validation rows to weigh the members on.")
        classes = (int(y.max()) + 1,) if self.loss == "multinomial" else ()
        P = np.zeros((len(y), *classes, len(self.members)))  # members' predictions, last
        for part in parts:
            if part.any():
                for i, member in enumerate(self.members_):
                    copy = member.settled().fit(X[~part], y[~part], t[~part])
                    P[part, ..., i] = copy.predict(X[part], t[part])
        held = np.logical_or.reduce(parts)
        return held, P[held]

    def _check_params(self) -> None:
        check_loss(self.loss, "ensemble", (*LOSSES, "multinomial"))
        unknown = [k for k in self.members if k not in MEMBERS]
        if unknown or not self.members:
            raise NetscopeError(f"ensemble: members must be some of {', '.join(MEMBERS)}; "
                                f"got {tuple(self.members)!r}.")
        if not 0 < self.validation < 1:
            raise NetscopeError(f"ensemble: validation must be a share between 0 and 1, "
                                f"got {self.validation!r}.")
        if self.folds is not None and not 2 <= self.folds <= 50:
            raise NetscopeError(f"ensemble: folds must be from 2 to 50 (or None for automatic), "
                                f"got {self.folds!r}.")

    def _predict(self, X, t) -> np.ndarray:
        return sum(w * m._predict(X, t) for w, m in zip(self.weights_, self.members_,
                                                        strict=True))

    def _predict_population(self, X) -> np.ndarray:
        return sum(w * m._predict_population(X) for w, m in zip(self.weights_, self.members_,
                                                                strict=True))

    def _state(self):
        state = {"weights": torch.from_numpy(np.asarray(self.weights_, dtype=np.float64))}
        for i, m in enumerate(self.members_):
            state.update({f"member{i}.{k}": v for k, v in m._state().items()})
        return state

    def _set_state(self, state):
        self.weights_ = state["weights"].numpy()
        self.members_ = []
        for i, key in enumerate(self.members):
            member = self._build(key)
            member.tasks_, member.n_features_in_ = self.tasks_, self.n_features_in_
            prefix = f"member{i}."
            member._set_state({k[len(prefix):]: v for k, v in state.items()
                               if k.startswith(prefix)})
            self.members_.append(member)


def simplex_weights(P: np.ndarray, y: np.ndarray, loss: str = "squared_error") -> np.ndarray:
    """Convex weights w (w >= 0, sum 1) minimizing the loss of P w: squared error by
    non-negative least squares (the sum enforced by a heavily weighted extra row); log loss
    of the averaged probabilities, or Poisson deviance of the averaged means, by SLSQP.
    Several classes: P is (n, K, members), and the log loss only reads each member's
    probability of the true class."""
    if loss == "multinomial":
        return _glm_weights(P[np.arange(len(y)), y.astype(np.int64)], np.ones(len(y)),
                            "log_loss")
    if loss != "squared_error":
        return _glm_weights(P, y, loss)
    big = 1e3 * max(float(np.abs(P).max()), float(np.abs(y).max()), 1.0) * np.sqrt(len(y))
    A = np.vstack([P, np.full((1, P.shape[1]), big)])
    w, _ = nnls(A, np.append(y, big))
    total = w.sum()
    return w / total if total > 0 else np.full(P.shape[1], 1.0 / P.shape[1])


def _glm_weights(P: np.ndarray, y: np.ndarray, loss: str) -> np.ndarray:
    from scipy.optimize import minimize

    k = P.shape[1]

    def f(w):
        mu = P @ w
        if loss == "log_loss":
            p = np.clip(mu, 1e-15, 1 - 1e-15)
            value = -np.mean(y * np.log(p) + (1 - y) * np.log1p(-p))
            grad = -(P.T @ (y / p - (1 - y) / (1 - p))) / len(y)
        else:
            m = np.maximum(mu, 1e-300)
            value = float(np.mean(of_loss(loss).unit_loss(y, m)))
            grad = 2 * (P.T @ (1 - y / m)) / len(y)
        return value, grad

    res = minimize(f, np.full(k, 1.0 / k), jac=True, method="SLSQP", bounds=[(0, 1)] * k,
                   constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1,
                                 "jac": lambda w: np.ones(k)}],
                   options={"ftol": 1e-12, "maxiter": 500})
    w = np.clip(res.x, 0, None)
    return w / w.sum()
