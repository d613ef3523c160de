"""Mixed-effects boosting: boosted trees for the fixed part, random intercepts and slopes
per task (GPBoost's model, Sigrist 2022), for numbers, yes/no and counts.

eta = F(x) + x'beta + z'b_t,  b_t ~ N(0, Sigma)   (mean = the kind's inverse link of eta)

Fitted by alternating, in rounds: a few trees fit the working residual of the current
prediction (for squared error the residual itself; for log loss and Poisson the Newton
step (y - mu) / w with weights w = dmu/deta, as LogitBoost does), then the mixed model
(``linear/mixed.py``, REML or the Laplace approximation) is refit with the trees' output as
a known offset, warm-started from the previous round's covariance. The number of rounds
comes from early stopping on an inner validation share of each task's training rows; the
kept trees are those of the best round, and the mixed part is refit on all training rows
with them as the offset, so every task's effects use all its rows. A task never seen gets
the trees plus the fixed effects (its random effects at zero).

Why not depend on gpboost: measured on the same rows (BENCHMARKS.md), this reaches its
accuracy with the pieces netscope already has (scikit-learn's trees, the mixed models that
equal lme4), saves as plain tensors like every family, and adds no compiled dependency.
"""

from __future__ import annotations

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from netscope.errors import NetscopeError
from netscope.multitask.base import Progress, TaskEstimator
from netscope.multitask.linear.glm import check_loss, mean_of
from netscope.multitask.linear.mixed import MixedEffects
from netscope.multitask.networks.tuned import validation_rows
from netscope.multitask.targets import of_loss
from netscope.multitask.trees.forest import Forest


class MixedBoosting(TaskEstimator):
    """Boosted trees plus a mixed model with random intercept and slopes per task."""

    label = "mixed-effects boosting"

    def __init__(self, *, leaves: tuple[int, ...] = (3, 7, 15), min_leaf: int = 20,
                 learning_rate: float = 0.1, trees_per_round: int = 20, max_rounds: int = 100,
                 patience: int = 3,
                 l2: float = 0.0, max_features: float = 1.0, cov: str = "factor1",
                 random: str | tuple[int, ...] = "within", loss: str = "squared_error",
                 rounds: int | None = None, threads: int | None = None, seed: int = 0,
                 progress: Progress | None = None) -> None:
        self.leaves = leaves  # tree sizes tried (each a boosting run on the validation rows)
        self.min_leaf = min_leaf
        self.learning_rate = learning_rate
        self.trees_per_round = trees_per_round
        self.max_rounds = max_rounds
        self.patience = patience
        self.l2 = l2
        self.max_features = max_features
        self.cov = cov
        self.random = random
        self.loss = loss
        self.rounds = rounds  # a known number of rounds: no validation share, no stopping
        self.threads = threads
        self.seed = seed
        self.progress = progress

    # -- fitting ---------------------------------------------------------------------------
    def _fit(self, X, y, t, n_tasks) -> None:
        self._check_params()
        kind = of_loss(self.loss)
        if self.rounds is not None:
            self.leaves_ = self.leaves[0]
            forests, _ = self._boost(X, y, t, self.rounds, None, self.leaves_)
            self.rounds_, self.validation_loss_ = self.rounds, None
        else:
            va = validation_rows(t, 0.2, self.seed)
            if not va.any():
                raise NetscopeError("mixed-effects boosting: no task has 2 training rows, so "
                                    "there are no inner validation rows to stop on.")
            runs = []
            for leaves in sorted(self.leaves):  # small to large, while larger trees help
                forests, history = self._boost(X[~va], y[~va], t[~va], self.max_rounds,
                                               (X[va], y[va], t[va], kind), leaves)
                runs.append((min(history), int(np.argmin(history)) + 1, leaves, forests,
                             self._theta))
                if len(runs) > 1 and runs[-1][0] >= runs[-2][0]:
                    break
            self.validation_loss_, self.rounds_, self.leaves_, forests, self._theta = min(
                runs, key=lambda r: r[0])
            self.search_ = [{"leaves": r[2], "rounds": r[1], "loss": r[0]} for r in runs]
            forests = forests[:self.rounds_]
        self.forest_ = Forest.combine(forests)
        F = self.forest_.predict(X)
        self.mixed_ = self._mixed(1, getattr(self, "_theta", None)).fit_offset(X, y, t, F)
        if self.progress:
            self.progress(f"{self.label}: {self.fit_summary()[0]}")

    def _boost(self, X, y, t, rounds: int, val, leaves: int
               ) -> tuple[list[Forest], list[float]]:
        """Rounds of (trees on the working residual, mixed model on the rest); with ``val``
        (X, y, t, kind) each round is scored there and boosting stops after ``patience``
        rounds without improvement."""
        forests: list[Forest] = []
        history: list[float] = []
        F, M = np.zeros(len(y)), np.zeros(len(y))
        Fv = np.zeros(len(val[1])) if val else None
        theta = None
        for r in range(rounds):
            eta = F + M
            mu = mean_of(self.loss, eta)
            w = np.ones_like(mu) if self.loss == "squared_error" else np.maximum(
                mu * (1 - mu) if self.loss == "log_loss" else mu, 1e-10)
            forest = self._trees((y - mu) / w, X, w, r, leaves)
            forests.append(forest)
            F += forest.predict(X)
            mixed = self._mixed(0, theta, gtol=1e-4).fit_offset(X, y, t, F)
            theta = mixed.theta_
            M = mixed.linear_predictor(X, mixed.task_index(t, len(t)))
            if val is None:
                continue
            Xv, yv, tv, kind = val
            Fv += forest.predict(Xv)
            mv = mixed.linear_predictor(Xv, mixed.task_index(tv, len(tv), "population"))
            history.append(float(np.mean(kind.unit_loss(yv, mean_of(self.loss, Fv + mv)))))
            if len(history) - 1 - int(np.argmin(history)) >= self.patience:
                break
        self._theta = theta
        return forests, history

    def _trees(self, target, X, weight, r: int, leaves: int) -> Forest:
        from sklearn.ensemble import HistGradientBoostingRegressor

        model = HistGradientBoostingRegressor(
            learning_rate=self.learning_rate, max_iter=self.trees_per_round,
            max_leaf_nodes=leaves, min_samples_leaf=self.min_leaf,
            l2_regularization=self.l2, max_features=self.max_features, early_stopping=False,
            random_state=self.seed + r)
        uniform = bool(np.all(weight == weight[0]))  # weighted binning is slow: skip it
        with threadpool_limits(self.threads, user_api="openmp"):
            model.fit(X, target, sample_weight=None if uniform else weight)
        return Forest.from_sklearn(model)

    def _mixed(self, nagq: int, theta, gtol: float = 1e-7) -> MixedEffects:
        return MixedEffects(random=self.random, cov=self.cov, loss=self.loss, nagq=nagq,
                            start=theta, gtol=gtol)

    def _check_params(self) -> None:
        check_loss(self.loss, self.label)
        for name in ("trees_per_round", "max_rounds", "patience", "min_leaf"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise NetscopeError(f"{self.label}: {name} must be a whole number >= 1, "
                                    f"got {value!r}.")
        if not self.leaves or min(self.leaves) < 2:
            raise NetscopeError(f"{self.label}: leaves must be numbers >= 2, got "
                                f"{self.leaves!r}.")
        if self.rounds is not None and self.rounds < 1:
            raise NetscopeError(f"{self.label}: rounds must be >= 1, got {self.rounds!r}.")

    def fit_summary(self) -> list[str]:
        how = (f"by early stopping on inner validation rows (loss {self.validation_loss_:.4g})"
               if getattr(self, "validation_loss_", None) is not None else "given")
        return [f"{self.rounds_} rounds of {self.trees_per_round} trees ({self.leaves_} leaves) "
                f"alternating with the mixed model, rounds and leaves {how}",
                *(f"mixed part: {line}" for line in self.mixed_.fit_summary())]

    def _chosen(self) -> dict:
        return {"rounds": self.rounds_, "leaves": (self.leaves_,)}

    # -- predicting ------------------------------------------------------------------------
    def _predict(self, X, t) -> np.ndarray:
        return mean_of(self.loss, self.forest_.predict(X) + self.mixed_.linear_predictor(X, t))

    def _predict_population(self, X) -> np.ndarray:
        """The trees and the fixed effects: a new task's random effects are zero."""
        t = np.full(X.shape[0], -1)
        return mean_of(self.loss, self.forest_.predict(X) + self.mixed_.linear_predictor(X, t))

    def random_correlations(self) -> np.ndarray:
        return self.mixed_.random_correlations()

    def _state(self):
        state = self.forest_.state("forest.")
        state.update({f"mixed.{k}": v for k, v in self.mixed_._state().items()})
        state["rounds"] = torch.tensor([self.rounds_, self.leaves_])
        return state

    def _set_state(self, state):
        self.forest_ = Forest.from_state(state, "forest.")
        self.mixed_ = self._mixed(1, None)
        self.mixed_.tasks_, self.mixed_.n_features_in_ = self.tasks_, self.n_features_in_
        self.mixed_._set_state({k[len("mixed."):]: v for k, v in state.items()
                                if k.startswith("mixed.")})
        self.rounds_, self.leaves_ = (int(v) for v in state["rounds"])
