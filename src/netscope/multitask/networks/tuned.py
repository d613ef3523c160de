"""Networks that are trained, not just run for the course's epochs.

With ``tune=True`` a network holds out an inner validation share of its training rows
(each task's rows dealt round-robin, so every task keeps training rows), trains each
setting of a small grid (learning rate, width, weight decay) for up to ``max_epochs``,
stops when the validation loss has not improved for ``patience`` epochs, and keeps the
best epoch's weights of the best setting (Keras' EarlyStopping with
restore_best_weights). No test row is ever seen. With ``tune=False`` (the lecture
protocol) it trains the given epochs on all rows, as the course does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from netscope.errors import NetscopeError
from netscope.multitask.base import TaskEstimator
from netscope.multitask.linear.glm import LOSSES, check_loss
from netscope.multitask.linear.ridge import inner_folds
from netscope.multitask.targets import of_loss

STEPS_PER_EPOCH = 512  # tuned row-batched networks take larger batches past 512 x 32 rows,
# so an epoch's cost stays in proportion to the rows (Adam moves every parameter each step)
NETWORK_LOSSES = (*LOSSES, "multinomial")  # several classes: one output per class, softmax
MIN_DELTA = 1e-4  # an epoch counts as better when it lowers the validation loss by this share


class EarlyStopping:
    """Called after every epoch: scores the validation rows, keeps a copy of the best
    weights, and says when ``patience`` epochs have passed without improvement."""

    def __init__(self, score: Callable[[], float], snapshot: Callable[[], Any],
                 patience: int) -> None:
        self.score, self.snapshot, self.patience = score, snapshot, patience
        self.best_loss, self.best_epoch, self.best_state = float("inf"), 0, None
        self.history: list[float] = []

    def __call__(self, epoch: int) -> bool:
        loss = self.score()
        loss = loss if np.isfinite(loss) else float("inf")
        self.history.append(loss)
        if loss < self.best_loss - MIN_DELTA * abs(self.best_loss) or self.best_state is None:
            self.best_loss, self.best_epoch, self.best_state = loss, epoch, self.snapshot()
        return not np.isfinite(loss) or epoch - self.best_epoch >= self.patience


def validation_rows(t: np.ndarray, share: float, seed: int) -> np.ndarray:
    """An inner validation share of each task's rows; tasks with one row keep it."""
    fold = inner_folds(t, max(2, round(1 / share)), seed + 7)
    return (fold == 0) & (np.bincount(t)[t] >= 2)


class NetworkEstimator(TaskEstimator):
    """A network family: ``_train(X, y, t, n_tasks, hp, stop)`` trains one setting ``hp``
    (its architecture, learning rate, weight decay, epochs), calling ``stop(epoch)`` after
    each epoch when given; this class adds the search and early stopping."""

    # searched when tuning, relative to the given values (so a learning rate the user sets
    # stays in the search): lr and width are multiplied, weight decay is the given value or
    # the larger alternative
    grid: dict[str, tuple[Any, ...]] = {"lr": (1, 3), "width": (1, 2)}
    decay_alternative: float | None = 1e-3  # None: weight decay is not searched
    _abstract = True

    def _training(self, loss: str, tune: bool, max_epochs: int, patience: int) -> None:
        """Store the parameters every network shares: its loss (squared_error, log_loss on
        a log-odds output, poisson on a log-rate output, multinomial on one output per
        class) and how it is trained (``tune``: early stopping and a small search on inner
        validation rows)."""
        self.loss, self.tune, self.max_epochs, self.patience = loss, tune, max_epochs, patience

    def _hp(self) -> dict[str, Any]:
        """The setting the parameters give (the course's); the search scales it."""
        return {"lr": self.lr, "width": 1, "weight_decay": self.weight_decay,
                "epochs": self.epochs}

    def _train(self, X, y, t, n_tasks, hp: dict[str, Any],
               stop: EarlyStopping | None) -> None:
        raise NotImplementedError

    def _search_space(self) -> list[dict[str, Any]]:
        """The settings tried: the grid's factors applied to the given values."""
        base = self._hp()
        decay = base["weight_decay"]
        axes = {k: tuple(f if isinstance(f, str) else base[k] * f for f in v)
                for k, v in self.grid.items()}  # numbers scale the given value; words replace
        axes["weight_decay"] = (decay,) if self.decay_alternative is None else \
            (decay, max(10 * decay, self.decay_alternative))
        return _combos(axes)

    def _stopper(self, X, y, t, kind, n_tasks):
        """Early stopping on the validation rows (X, y, t): the whole network's loss."""
        return EarlyStopping(lambda: float(np.mean(kind.unit_loss(y, self._predict(X, t)))),
                             self._snapshot, self.patience)

    def _snapshot(self) -> dict:
        return {k: v.detach().clone() for k, v in self._state().items()}

    def _fit(self, X, y, t, n_tasks) -> None:
        check_loss(self.loss, self.label, NETWORK_LOSSES)
        self._train_mask = None  # the observations a setting trains on (None: all)
        if not self.tune:
            self.chosen_: dict[str, Any] = {}
            self.batch_size_ = self.batch_size
            self._train(X, y, t, n_tasks, self._hp(), None)
            return
        if self.max_epochs < 1 or self.patience < 1:
            raise NetscopeError(f"{self.label}: max_epochs and patience must be >= 1, got "
                                f"{self.max_epochs} and {self.patience}.")
        va = validation_rows(t, 0.2, self.seed)
        if not va.any():
            raise NetscopeError(f"{self.label}: no task has 2 training rows, so there are no "
                                f"inner validation rows to stop early on; use tune=False.")
        kind = of_loss(self.loss)
        self.batch_size_ = max(self.batch_size, -(-int((~va).sum()) // STEPS_PER_EPOCH))
        trials, failed = [], None
        space = self._search_space()
        self._train_mask = ~va
        for i, combo in enumerate(space):
            hp = {**self._hp(), **combo, "epochs": self.max_epochs}
            stop = _Heartbeat(self._stopper(X[va], y[va], t[va], kind, n_tasks), self.progress,
                              f"{self.label}: setting {i + 1}/{len(space)} ({_shown(combo)})")
            try:
                self._train(X[~va], y[~va], t[~va], n_tasks, hp, stop)
            except FloatingPointError as exc:  # this setting diverged: the others may not
                failed = exc
            if stop.best_state is None or not np.isfinite(stop.best_loss):
                continue
            trials.append((stop.best_loss, stop.best_epoch, combo, stop.best_state))
            if self.progress:
                self.progress(f"{self.label}: {_shown(combo)}: validation loss "
                              f"{stop.best_loss:.4g} at epoch {stop.best_epoch}")
        if not trials:
            raise failed or FloatingPointError(f"{self.label}: every setting of the search "
                                               f"diverged; lower the learning rate.")
        loss, epoch, combo, state = min(trials, key=lambda r: r[0])
        self._set_state(state)
        self.chosen_ = {**combo, "epochs": epoch}
        if self.batch_size_ != self.batch_size:
            self.chosen_["batch size"] = self.batch_size_
        self.validation_rows_ = int(va.sum())
        self.search_ = [{**c, "epochs": e, "loss": v} for v, e, c, _ in trials]

    def fit_summary(self) -> list[str]:
        chosen = getattr(self, "chosen_", {})
        if not chosen:
            return []
        return [f"{_shown(chosen)}, chosen by early stopping (patience {self.patience}) and a "
                f"search over {len(self.search_)} settings on {self.validation_rows_} inner "
                f"validation rows (best weights kept)"]


class _Heartbeat:
    """A stopper that also says, every 10 epochs, how far the search has come."""

    def __init__(self, stop, progress, what: str) -> None:
        self.stop, self.progress, self.what = stop, progress, what

    def __call__(self, epoch: int, *args) -> bool:
        done = self.stop(epoch, *args)
        if self.progress and (epoch % 10 == 0 or done):
            self.progress(f"{self.what}: epoch {epoch}, best validation loss "
                          f"{self.stop.best_loss:.4g} at epoch {self.stop.best_epoch}")
        return done

    def __getattr__(self, name: str):
        return getattr(self.stop, name)


def _combos(grid: dict[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in
            itertools.product(*(grid[k] for k in keys))] or [{}]


def _shown(values: dict[str, Any]) -> str:
    def one(v):
        return ",".join(str(x) for x in v) if isinstance(v, tuple) else f"{v:g}" \
            if isinstance(v, float) else str(v)
    return ", ".join(f"{k.replace('_', ' ')} {one(v)}" for k, v in values.items())
