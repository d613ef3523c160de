"""The model families a comparison can fit, by key: what each is, and how its estimator is
built from the run's hyper-parameters (``Settings``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from netscope.errors import NetscopeError
from netscope.multitask.base import Progress, TaskEstimator
from netscope.multitask.boosted import BoostedTrees
from netscope.multitask.ensemble import Ensemble
from netscope.multitask.gated import TaskGatedMLP
from netscope.multitask.mixed import COVARIANCES, MixedEffects
from netscope.multitask.pertask import PerTaskMLP
from netscope.multitask.pooled import PooledMLP
from netscope.multitask.ridge import MeanRegularizedRidge, PooledRidge, RidgePerTask
from netscope.multitask.shared_trunk import SharedTrunkMTL
from netscope.multitask.task_covariance import LearnedTaskCovariance


@dataclass(frozen=True)
class Settings:
    """Hyper-parameters; the defaults are the course's values for the school data."""

    per_task_hidden: tuple[int, ...] = (30, 15)
    per_task_epochs: int = 5
    per_task_optimizer: str = "rmsprop"
    pooled_hidden: tuple[int, int] = (32, 16)
    pooled_epochs: int = 20
    gated_width: int = 32
    gated_hidden: int = 16
    gated_epochs: int = 20
    stage_epochs: tuple[int, int, int] = (10, 10, 10)
    stage_lr: tuple[float, float, float] = (1e-3, 1e-4, 1e-5)
    shared_reduce: str = "sum"
    batch_size: int = 32
    lr: float = 1e-3
    ridge_folds: int = 3
    weight_decay: float = 0.0  # L2 on every neural family's weights (0: the course)
    mixed_cov: str = "factor1"  # the mixed model's random-effects covariance (COVARIANCES)
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse settings that would train nothing or fail deep inside PyTorch."""
        counts = {"per_task_epochs": self.per_task_epochs, "pooled_epochs": self.pooled_epochs,
                  "gated_epochs": self.gated_epochs, "batch_size": self.batch_size,
                  "gated_width": self.gated_width, "gated_hidden": self.gated_hidden,
                  **{f"per_task_hidden[{i}]": h for i, h in enumerate(self.per_task_hidden)},
                  **{f"pooled_hidden[{i}]": h for i, h in enumerate(self.pooled_hidden)}}
        for name, value in counts.items():
            if int(value) != value or value < 1:
                raise NetscopeError(f"settings: {name} must be a whole number >= 1, "
                                    f"got {value!r}.")
        if len(self.stage_epochs) != 3 or min(self.stage_epochs) < 0:
            raise NetscopeError(f"settings: stage_epochs must be three numbers >= 0, "
                                f"got {self.stage_epochs!r}.")
        rates = {"lr": self.lr, **{f"stage_lr[{i}]": r for i, r in enumerate(self.stage_lr)}}
        for name, value in rates.items():
            if not np.isfinite(value) or value <= 0:
                raise NetscopeError(f"settings: {name} must be a number > 0, got {value!r}.")
        if len(self.stage_lr) != 3:
            raise NetscopeError(f"settings: stage_lr needs three values, got {self.stage_lr!r}.")
        if not np.isfinite(self.weight_decay) or self.weight_decay < 0:
            raise NetscopeError(f"settings: weight_decay must be >= 0, got {self.weight_decay!r}.")
        if self.mixed_cov not in COVARIANCES:
            raise NetscopeError(f"settings: mixed_cov must be one of {COVARIANCES}, "
                                f"got {self.mixed_cov!r}.")
        if self.ridge_folds < 2:
            raise NetscopeError(f"settings: ridge_folds must be >= 2, got {self.ridge_folds!r}.")
        if not 0 <= self.seed < 2**32:
            raise NetscopeError(f"settings: seed must be from 0 to 2**32-1, got {self.seed!r}.")

    @classmethod
    def for_dataset(cls, name: str | None, **overrides) -> Settings:
        """Course defaults; the survey's tasks have 15-16 rows (one mini-batch per epoch),
        so its per-task parts need more epochs and a larger first-stage learning rate, and
        every subject rates the same 16 computers, so the networks need weight decay not to
        memorize them (without it they extrapolate badly to the 4 hold-out profiles).
        ``name`` is the built-in data set (``TaskData.reference``); a user's file, even one
        called survey.csv, gets the general defaults."""
        base = cls()
        if name == "survey":
            base = cls(per_task_epochs=100, pooled_epochs=20, gated_epochs=60,
                       stage_epochs=(40, 20, 20), stage_lr=(1e-2, 1e-3, 1e-4),
                       weight_decay=1e-2)
        fields = asdict(base)
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**fields)


DIVERGED = 10.0  # a standardized test MSE above this is reported as a failed fit


@dataclass(frozen=True)
class Family:
    key: str
    label: str
    description: str
    build: Callable[[Settings, Progress | None], TaskEstimator]


FAMILIES: dict[str, Family] = {f.key: f for f in [
    Family("ridge-per-task", "ridge per task",
           "independent ridge regression per task, penalty by inner CV",
           lambda s, p: RidgePerTask(folds=s.ridge_folds, seed=s.seed, progress=p)),
    Family("pooled-ridge", "pooled ridge", "one ridge regression for all rows",
           lambda s, p: PooledRidge(folds=s.ridge_folds, seed=s.seed, progress=p)),
    Family("mtl-ridge", "mean-regularized MTL ridge",
           "Evgeniou & Pontil (2004): w_t = w_0 + v_t, both penalties by inner CV",
           lambda s, p: MeanRegularizedRidge(folds=s.ridge_folds, seed=s.seed, progress=p)),
    Family("per-task-mlp", "per-task MLP", "one MLP per task, trained as one batched program",
           lambda s, p: PerTaskMLP(
               hidden=s.per_task_hidden, epochs=s.per_task_epochs, batch_size=s.batch_size,
               optimizer=s.per_task_optimizer, lr=s.lr, seed=s.seed, progress=p,
               weight_decay=s.weight_decay)),
    Family("pooled-mlp", "pooled MLP", "one MLP for all rows, task ignored",
           lambda s, p: PooledMLP(
               hidden=s.pooled_hidden, epochs=s.pooled_epochs, batch_size=s.batch_size,
               optimizer="adam", lr=s.lr, seed=s.seed, progress=p, weight_decay=s.weight_decay)),
    Family("shared-trunk-accumulate", "shared trunk (accumulate)",
           "pooled MLP's hidden layers shared, a head per task; all tasks' gradients "
           "before each update; staged unfreezing (time includes the pooled start)",
           lambda s, p: _shared_trunk("accumulate", s, p)),
    Family("shared-trunk-random", "shared trunk (random batches)",
           "as above, but per-task mini-batches in random order, each applied at once",
           lambda s, p: _shared_trunk("random", s, p)),
    Family("task-gated", "task-gated network",
           "sigmoid(task embedding) gates a Dense(32) projection; Dense 16; linear output",
           lambda s, p: TaskGatedMLP(
               width=s.gated_width, hidden=s.gated_hidden, epochs=s.gated_epochs,
               batch_size=s.batch_size, optimizer="adam", lr=s.lr, seed=s.seed, progress=p,
               weight_decay=s.weight_decay)),
    Family("mixed-effects", "mixed-effects model",
           "random intercept and slopes per task, learned covariance, REML (lme4's model)",
           lambda s, p: MixedEffects(cov=s.mixed_cov, progress=p)),
    Family("boosted-trees", "boosted trees",
           "gradient-boosted trees, task as a categorical feature; trees, leaves and L2 "
           "chosen on inner validation rows",
           lambda s, p: BoostedTrees(seed=s.seed, threads=1, progress=p)),
    Family("learned-task-covariance", "learned task covariance (MTRL)",
           "Zhang & Yeung (2010): shared weights plus task deviations coupled by a learned "
           "task covariance; penalties by inner CV",
           lambda s, p: LearnedTaskCovariance(folds=s.ridge_folds, seed=s.seed, progress=p)),
    Family("ensemble", "ensemble (MTL ridge + mixed + trees)",
           "weighted average of mean-regularized ridge, mixed-effects and boosted trees; "
           "weights on held-out training rows (time includes the members)",
           lambda s, p: Ensemble(seed=s.seed, progress=p)),
]}


def _shared_trunk(method: str, s: Settings, p: Progress | None) -> SharedTrunkMTL:
    return SharedTrunkMTL(method=method, stage_epochs=s.stage_epochs, stage_lr=s.stage_lr,
                          batch_size=s.batch_size, optimizer="adam",
                          shared_reduce=s.shared_reduce, pooled_epochs=s.pooled_epochs,
                          seed=s.seed, progress=p, weight_decay=s.weight_decay)


def check_families(keys: Sequence[str]) -> list[str]:
    """The family keys as a list, or an error naming the first unknown one."""
    unknown = [k for k in keys if k not in FAMILIES]
    if unknown:
        raise NetscopeError(f"unknown model family {unknown[0]!r}; choose from "
                            f"{', '.join(FAMILIES)}.")
    if not keys:
        raise NetscopeError("no model family chosen; choose from " + ", ".join(FAMILIES) + ".")
    return list(keys)


