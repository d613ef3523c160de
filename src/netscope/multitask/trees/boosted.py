"""Gradient-boosted trees with the task as a categorical feature (what a practitioner fits).

scikit-learn's HistGradientBoostingRegressor splits on categories natively (up to 255 of
them; with more tasks the task column is each row's cross-fitted mixed-model prediction,
which carries the task's intercept and slopes). The
number of trees comes from early stopping and the tree size and L2 penalty from a small
search, both on one inner validation share of each task's training rows: no test row is
ever seen. After the search the chosen setting is refit on all training rows with the
number of trees found, and the forest is exported to arrays (``forest.py``).

Defaults: small trees (3-15 leaves), at least 50 rows per leaf (at most a tenth of the
rows, so a few hundred rows still get splits), and each split choosing
among a random 30% of the columns. On the school data's 10 standard splits this moved the
trees from 38.12% to 38.55% explained variance against the 7-31 leaves, 20 rows, all columns
of scikit-learn's usual practice: the signal is mostly additive, and column sampling keeps
single strong features (the VR band) from taking every split.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from netscope.errors import NetscopeError
from netscope.multitask.base import Progress, TaskEstimator
from netscope.multitask.linear.glm import check_loss, mean_of
from netscope.multitask.linear.mixed import MixedEffects
from netscope.multitask.linear.ridge import inner_folds
from netscope.multitask.trees.forest import Forest

MAX_CATEGORIES = 255  # HistGradientBoosting's limit on a categorical feature's levels


class BoostedTrees(TaskEstimator):
    """HistGradientBoosting on [features, task]; leaves, L2 and trees chosen on inner rows."""

    label = "boosted trees"
    takes_missing = True  # scikit-learn's trees learn where missing values go

    def __init__(self, *, leaves: tuple[int, ...] = (3, 5, 7, 15),
                 l2: tuple[float, ...] = (0.0, 10.0),
                 learning_rate: float = 0.05, max_trees: int = 2000, min_leaf: int = 50,
                 max_features: float = 0.3, validation: float = 0.2,
                 threads: int | None = None, seed: int = 0,
                 trees: int | None = None, loss: str = "squared_error",
                 progress: Progress | None = None) -> None:
        self.leaves = leaves
        self.l2 = l2
        self.learning_rate = learning_rate
        self.max_trees = max_trees
        self.min_leaf = min_leaf
        self.max_features = max_features  # share of features each split may consider
        self.validation = validation
        self.threads = threads
        self.seed = seed
        self.trees = trees  # a known setting (one leaves, one l2): no search, no validation
        self.loss = loss  # squared_error, log_loss (yes/no: probabilities) or poisson (counts)
        self.progress = progress

    def _fit(self, X, y, t, n_tasks) -> None:
        self._check_params()
        self.task_encoding_ = None  # shrunken task means: only in models saved before
        self.encoder_ = self._encode_tasks(X, y, t, n_tasks)
        # at most a tenth of the rows per leaf: small data still get splits
        self.min_leaf_ = max(1, min(self.min_leaf, len(y) // 10))
        Z = self._design(X, t)
        if self.trees is not None:
            self._fit_known(Z, y, n_tasks)
            return
        val = self._validation_rows(t)
        if not val.any() or val.all():
            raise NetscopeError("boosted trees: too few training rows for an inner validation "
                                "share; every task needs at least 2 training rows.")
        with threadpool_limits(self.threads, user_api="openmp"):
            trials = [self._trial(Z, y, val, leaves, l2)
                      for leaves, l2 in itertools.product(self.leaves, self.l2)]
        best = min(trials, key=lambda r: r["loss"])
        self.search_ = trials
        self.leaves_, self.l2_, self.trees_ = best["leaves"], best["l2"], best["trees"]
        self._fit_final(Z, y, n_tasks)
        if self.progress:
            self.progress(f"boosted trees: {self.fit_summary()[0]}, chosen on "
                          f"{int(val.sum())} inner validation rows")

    def fit_summary(self) -> list[str]:
        leaf = getattr(self, "min_leaf_", self.min_leaf)
        return [f"{self.trees_} trees of {self.leaves_} leaves, L2 {self.l2_:g}, at least "
                f"{leaf} rows per leaf, {self.max_features:.0%} of the columns per split"]

    def _chosen(self) -> dict:
        """The tree size, L2 and tree count found (the search is most of the trees' cost)."""
        return {"leaves": (self.leaves_,), "l2": (self.l2_,), "trees": self.trees_}

    def _fit_known(self, Z, y, n_tasks) -> None:
        """The given setting fit on all rows (as the ensemble's inner copies are)."""
        self.search_ = []
        self.leaves_, self.l2_, self.trees_ = self.leaves[0], self.l2[0], self.trees
        self._fit_final(Z, y, n_tasks)

    def _fit_final(self, Z, y, n_tasks) -> None:
        """The chosen setting on all rows, exported to arrays."""
        with threadpool_limits(self.threads, user_api="openmp"):
            final = self._model(self.leaves_, self.l2_, self.trees_, early=False).fit(Z, y)
        _check_identity_encoding(final, n_tasks)
        self.forest_ = Forest.from_sklearn(final)

    def _check_params(self) -> None:
        check_loss(self.loss, "boosted trees")
        if self.trees is not None and (self.trees < 1 or len(self.leaves) != 1
                                       or len(self.l2) != 1):
            raise NetscopeError("boosted trees: a fixed number of trees needs one leaves and "
                                "one l2 value, and trees >= 1.")
        if not 0 < self.validation < 1:
            raise NetscopeError(f"boosted trees: validation must be a share between 0 and 1, "
                                f"got {self.validation!r}.")
        if not self.leaves or min(self.leaves) < 2:
            raise NetscopeError(f"boosted trees: leaves must be numbers >= 2, got {self.leaves!r}.")
        if int(self.min_leaf) != self.min_leaf or self.min_leaf < 1:
            raise NetscopeError(f"boosted trees: min_leaf must be a whole number >= 1, "
                                f"got {self.min_leaf!r}.")
        if not 0 < self.max_features <= 1:
            raise NetscopeError(f"boosted trees: max_features must be a share in (0, 1], "
                                f"got {self.max_features!r}.")
        if not self.l2 or min(self.l2) < 0:
            raise NetscopeError(f"boosted trees: l2 must be numbers >= 0, got {self.l2!r}.")

    def _encode_tasks(self, X, y, t, n_tasks) -> MixedEffects | None:
        """None: the task is a categorical column. With more tasks than a categorical split
        takes, the task column is each row's mixed-model prediction (fixed effects plus its
        task's random intercept and slopes, on the link scale), cross-fitted on 5 folds of
        the training rows so a row's own target never enters its encoding; a shrunken task
        mean (the intercept alone) lost 11 points of explained variance at 2,000 tasks with
        random slopes, this loses none (BENCHMARKS.md). Returns the model fit on all rows,
        which encodes new rows."""
        if n_tasks <= MAX_CATEGORIES:
            return None
        self.fill_ = np.array([np.median(c[~np.isnan(c)]) if (~np.isnan(c)).any() else 0.0
                               for c in X.T])
        Xf = np.where(np.isnan(X), self.fill_, X)
        fold = inner_folds(t, 5, self.seed)
        self._cross_fitted = np.empty(len(y))
        for f in range(5):
            rows = fold == f
            part = self._encoder().fit(Xf[~rows], y[~rows], t[~rows])
            self._cross_fitted[rows] = part.linear_predictor(
                Xf[rows], part.task_index(t[rows], int(rows.sum()), "population"))
        return self._encoder().fit(Xf, y, t)

    def _encoder(self) -> MixedEffects:
        return MixedEffects(loss=self.loss, nagq=0)

    def _design(self, X, t, training: bool = True) -> np.ndarray:
        if self.encoder_ is None and self.task_encoding_ is None:
            col = t.astype(np.float64)
        elif self.task_encoding_ is not None:  # a model saved before encoders
            col = self.task_encoding_[np.maximum(t, 0)]
        elif training:
            col = self._cross_fitted
        else:
            col = self.encoder_.linear_predictor(np.where(np.isnan(X), self.fill_, X), t)
        return np.hstack([col[:, None], X])  # first: the column order scikit-learn uses inside

    def _validation_rows(self, t) -> np.ndarray:
        folds = max(2, round(1 / self.validation))
        fold = inner_folds(t, folds, self.seed)
        sizes = np.bincount(t)
        return (fold == 0) & (sizes[t] >= 2)

    def _model(self, leaves: int, l2: float, trees: int, early: bool):
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cat = [0] if self.encoder_ is None and self.task_encoding_ is None else None
        common = dict(learning_rate=self.learning_rate, max_iter=trees, max_leaf_nodes=leaves,
                      min_samples_leaf=self.min_leaf_, l2_regularization=l2,
                      categorical_features=cat, max_features=self.max_features,
                      early_stopping=early, n_iter_no_change=20, random_state=self.seed)
        if self.loss == "log_loss":
            return HistGradientBoostingClassifier(**common)
        return HistGradientBoostingRegressor(loss=self.loss, **common)

    def _trial(self, Z, y, val, leaves, l2) -> dict:
        model = self._model(leaves, l2, self.max_trees, early=True)
        model.fit(Z[~val], y[~val], X_val=Z[val], y_val=y[val])
        # the validation loss per tree count: take the best count, not the last one
        losses = -np.asarray(model.validation_score_)  # the loss (half squared error, log
        trees = max(1, int(np.argmin(losses)))  # loss or half deviance) at 0..n_iter trees
        return {"leaves": leaves, "l2": l2, "trees": trees, "loss": float(losses[trees])}

    def _predict(self, X, t) -> np.ndarray:
        return mean_of(self.loss, self.forest_.predict(self._design(X, t, training=False)))

    def _predict_population(self, X) -> np.ndarray:
        """A task never seen: as a category it is missing, so every split on the task sends
        it where the trees send missing values (as scikit-learn and LightGBM do); encoded, it
        gets the mixed model's fixed effects (its random effects at zero)."""
        if self.encoder_ is not None:
            return self._predict(X, np.full(X.shape[0], -1))
        return mean_of(self.loss, self.forest_.predict(
            np.hstack([np.full((X.shape[0], 1), np.nan), X])))

    def _state(self):
        state = self.forest_.state("forest.")
        state["chosen"] = torch.tensor([self.leaves_, self.l2_, self.trees_], dtype=torch.float64)
        if self.task_encoding_ is not None:
            state["task_encoding"] = torch.from_numpy(self.task_encoding_)
        if self.encoder_ is not None:
            state.update({f"encoder.{k}": v for k, v in self.encoder_._state().items()})
            state["fill"] = torch.from_numpy(self.fill_)
        return state

    def _set_state(self, state):
        self.forest_ = Forest.from_state(state, "forest.")
        leaves, l2, trees = state["chosen"].tolist()
        self.leaves_, self.l2_, self.trees_ = int(leaves), l2, int(trees)
        enc = state.get("task_encoding")
        self.task_encoding_ = None if enc is None else enc.numpy()
        self.encoder_ = None
        if "fill" in state:
            self.fill_ = state["fill"].numpy()
            self.encoder_ = self._encoder()
            self.encoder_.tasks_, self.encoder_.n_features_in_ = self.tasks_, self.n_features_in_
            self.encoder_._set_state({k[len("encoder."):]: v for k, v in state.items()
                                      if k.startswith("encoder.")})


def _check_identity_encoding(model, n_tasks: int) -> None:
    """scikit-learn ordinal-encodes categorical columns and moves them first before growing
    trees; with the task first and every code 0..T-1 present that encoding is the identity,
    so the exported trees read the design directly. Refuse anything else loudly."""
    prep = getattr(model, "_preprocessor", None)
    if prep is None:
        return
    try:
        cats = prep.named_transformers_["encoder"].categories_
    except (AttributeError, KeyError):
        cats = None
    if cats is None or len(cats) != 1 or not np.array_equal(cats[0], np.arange(n_tasks)):
        raise NetscopeError("boosted trees: this scikit-learn version encodes the task column "
                            "in an unexpected way; please report it with `pip show "
                            "scikit-learn`.")
