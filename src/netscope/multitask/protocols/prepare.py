"""One split made ready for the models: features and target scaled with the statistics the
protocol allows, checked to fit the networks' float32."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netscope.data.tasks import Split, Standardizer, TaskData
from netscope.errors import NetscopeError

SCALE_CHOICES = ("all", "train", "none")


@dataclass(frozen=True)
class Prepared:
    """One split, scaled for the models; ``target`` maps predictions back to the data's units."""

    X_train: np.ndarray
    y_train: np.ndarray
    t_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    t_test: np.ndarray
    target: Standardizer
    features: Standardizer
    n_tasks: int
    split: Split

    @property
    def reference_scale(self) -> float:
        """The target SD that defines the "standardized" MSE (training SD on a raw scale)."""
        if self.target.scale[0] != 1.0:
            return float(self.target.scale[0])
        return float(np.std(self.y_train))  # y_train is centred at most: its SD is the raw one


def prepare(data: TaskData, split: Split, scale_from: str) -> Prepared:
    """Scale features and target with statistics from the rows the protocol allows."""
    if scale_from not in SCALE_CHOICES:
        raise NetscopeError(f"scale_from must be one of {SCALE_CHOICES}, got {scale_from!r}.")
    split.check(data)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
        prep = _scaled(data, split, scale_from)
    _check_float32(data, prep)
    return prep


def _scaled(data: TaskData, split: Split, scale_from: str) -> Prepared:
    if scale_from == "none":  # raw units, but the target centred on its training mean:
        keep = Standardizer.fit(data.X[split.train]).keep  # models without a free intercept
        fx = Standardizer.identity(data.n_features, keep)  # (ridge penalizes its constant,
        fy = Standardizer(mean=np.array([data.y[split.train].mean()]),  # MLPs start at 0)
                          scale=np.ones(1), keep=np.ones(1, bool))  # would be biased toward 0
    else:
        rows = np.arange(data.X.shape[0]) if scale_from == "all" else split.train
        fx = Standardizer.fit(data.X[rows])
        fy = Standardizer.fit(data.y[rows, None], drop_constant=False)
    return Prepared(
        X_train=fx.transform(data.X[split.train]), y_train=fy.transform_target(data.y[split.train]),
        t_train=data.task[split.train],
        X_test=fx.transform(data.X[split.test]), y_test=fy.transform_target(data.y[split.test]),
        t_test=data.task[split.test], target=fy, features=fx, n_tasks=data.n_tasks, split=split,
    )


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_float32(data: TaskData, prep: Prepared) -> None:
    """The networks compute in float32: values (or scalers) that overflow it would give
    inf/NaN losses, or overflow warnings and results of no meaning."""
    fx = prep.features
    if not fx.keep.any():
        raise NetscopeError(f"{data.name}: no feature varies on the training rows (every column "
                            f"is constant there), so there is nothing to learn from.")
    bad = ~np.isfinite(fx.mean) | ~np.isfinite(fx.scale)
    for values in (prep.X_train, prep.X_test):
        bad[fx.keep] |= (~np.isfinite(values) | (np.abs(values) > FLOAT32_MAX / 16)).any(axis=0)
    if bad.any():
        col = int(np.flatnonzero(bad)[0])
        raise NetscopeError(f"{data.name}: feature '{data.feature_names[col]}' cannot be scaled "
                            f"into float32 (values up to {np.max(np.abs(data.X[:, col])):.3g}); "
                            f"rescale the column (e.g. other units, or its logarithm).")
    scale = np.concatenate([prep.target.mean, prep.target.scale])
    ys = np.concatenate([prep.y_train, prep.y_test])
    if not np.isfinite(scale).all() or not np.isfinite(ys).all() or \
            np.abs(ys).max() > FLOAT32_MAX / 16:
        raise NetscopeError(f"{data.name}: target '{data.target_name}' cannot be scaled into "
                            f"float32 (values up to {np.max(np.abs(data.y)):.3g}); rescale it.")
