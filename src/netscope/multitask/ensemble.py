"""A weighted average of linear multi-task models and boosted trees.

They make different errors (the linear models share strength across tasks, the trees find
interactions and thresholds), so an average beats each. The weights (non-negative, summing
to one) minimize the squared error on an inner validation share of each task's training
rows, predicted by members fit on the rest (boosted trees that the comparison already
searched keep the setting it found instead of searching again); then every member is refit
on all training rows (or taken already fitted from the comparison, on the same rows).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from scipy.optimize import nnls

from netscope.errors import NetscopeError
from netscope.multitask.base import Progress, TaskEstimator
from netscope.multitask.boosted import BoostedTrees
from netscope.multitask.mixed import MixedEffects
from netscope.multitask.ridge import MeanRegularizedRidge, inner_folds
from netscope.multitask.task_covariance import LearnedTaskCovariance

MEMBERS: dict[str, type[TaskEstimator]] = {
    "mtl-ridge": MeanRegularizedRidge, "mixed-effects": MixedEffects,
    "boosted-trees": BoostedTrees, "learned-task-covariance": LearnedTaskCovariance,
}


class Ensemble(TaskEstimator):
    """Convex combination of member families, weights from inner validation rows."""

    family = "ensemble"

    def __init__(self, members: tuple[str, ...] = ("mtl-ridge", "mixed-effects", "boosted-trees"),
                 validation: float = 0.2, seed: int = 0,
                 progress: Progress | None = None) -> None:
        self.members = members
        self.validation = validation
        self.seed = seed
        self.progress = progress

    def fit(self, X, y, tasks, fitted: Mapping[str, TaskEstimator] | None = None) -> Ensemble:
        """``fitted``: members already fit on exactly these rows, reused as the final ones."""
        self._given = dict(fitted or {})
        try:
            return super().fit(X, y, tasks)
        finally:
            self._given = {}

    def _build(self, key: str) -> TaskEstimator:
        cls = MEMBERS[key]
        params = cls().get_params()
        return cls(**{k: v for k, v in (("seed", self.seed),) if k in params})

    def _inner(self, key: str) -> TaskEstimator:
        """The member to refit on the rows before the validation share. A member that the
        comparison already fit on these training rows reuses what its search chose
        (penalties, tree size and count, covariance start) instead of searching again."""
        given = self._given.get(key)
        return given.settled() if given is not None else self._build(key)

    def _fit(self, X, y, t, n_tasks) -> None:
        self._check_params()
        fold = inner_folds(t, max(2, round(1 / self.validation)), self.seed + 1)
        val = (fold == 0) & (np.bincount(t)[t] >= 2)
        if not val.any():
            raise NetscopeError("ensemble: no task has 2 training rows, so there are no inner "
                                "validation rows to weigh the members on.")
        P = np.column_stack([self._inner(k).fit(X[~val], y[~val], t[~val]).predict(X[val], t[val])
                             for k in self.members])
        self.weights_ = simplex_weights(P, y[val])
        self.validation_mse_ = {k: float(np.mean((P[:, i] - y[val]) ** 2))
                                for i, k in enumerate(self.members)}
        self.validation_mse_["ensemble"] = float(np.mean((P @ self.weights_ - y[val]) ** 2))
        self.members_ = [self._given.get(k) or self._build(k).fit(X, y, t) for k in self.members]
        if self.progress:
            shown = ", ".join(f"{k} {w:.2f}" for k, w in zip(self.members, self.weights_,
                                                              strict=True))
            self.progress(f"ensemble: weights {shown} (chosen on {int(val.sum())} inner "
                          f"validation rows)")

    def _check_params(self) -> None:
        unknown = [k for k in self.members if k not in MEMBERS]
        if unknown or not self.members:
            raise NetscopeError(f"ensemble: members must be some of {', '.join(MEMBERS)}; "
                                f"got {tuple(self.members)!r}.")
        if not 0 < self.validation < 1:
            raise NetscopeError(f"ensemble: validation must be a share between 0 and 1, "
                                f"got {self.validation!r}.")

    def _predict(self, X, t) -> np.ndarray:
        return sum(w * m._predict(X, t) for w, m in zip(self.weights_, self.members_,
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
            member = MEMBERS[key]()
            member.tasks_, member.n_features_in_ = self.tasks_, self.n_features_in_
            prefix = f"member{i}."
            member._set_state({k[len(prefix):]: v for k, v in state.items()
                               if k.startswith(prefix)})
            self.members_.append(member)


def simplex_weights(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """argmin |P w - y|^2 over w >= 0 with sum(w) = 1 (non-negative least squares with the
    sum enforced by a heavily weighted extra row)."""
    big = 1e3 * max(float(np.abs(P).max()), float(np.abs(y).max()), 1.0) * np.sqrt(len(y))
    A = np.vstack([P, np.full((1, P.shape[1]), big)])
    w, _ = nnls(A, np.append(y, big))
    total = w.sum()
    return w / total if total > 0 else np.full(P.shape[1], 1.0 / P.shape[1])
