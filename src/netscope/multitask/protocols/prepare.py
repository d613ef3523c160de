"""One split made ready for the models: features and target scaled with the statistics the
protocol allows, checked to fit the networks' float32."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netscope.data.tasks import Split, Standardizer, TaskData
from netscope.errors import NetscopeError
from netscope.multitask.protocols.missing import Imputer
from netscope.multitask.targets import KINDS

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
    X_train_gaps: np.ndarray | None = None  # as X_train with missing values left NaN (for
    X_test_gaps: np.ndarray | None = None  # families that handle them); None: no gaps
    notes: tuple[str, ...] = ()  # what was imputed
    imputer: Imputer | None = None  # how gaps were filled (None: no gaps anywhere)

    def features_for(self, native_missing: bool) -> tuple[np.ndarray, np.ndarray]:
        """(train, test) features: imputed, or with the gaps as NaN for a family that takes
        them as they are."""
        if native_missing and self.X_train_gaps is not None:
            return self.X_train_gaps, self.X_test_gaps
        return self.X_train, self.X_test

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
    _check_classes(data, split)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
        prep = _scaled(data, split, scale_from)
    _check_float32(data, prep)
    return prep


def _scaled(data: TaskData, split: Split, scale_from: str) -> Prepared:
    imp = Imputer.fit(data.X[split.train])
    X = imp.transform(data.X)  # gaps filled from training rows only
    if scale_from == "none":  # raw units, but the target centred on its training mean:
        keep = Standardizer.fit(X[split.train]).keep  # models without a free intercept
        fx = Standardizer.identity(X.shape[1], keep)  # (ridge penalizes its constant,
        fy = Standardizer(mean=np.array([data.y[split.train].mean()]),  # MLPs start at 0)
                          scale=np.ones(1), keep=np.ones(1, bool))  # would be biased toward 0
    else:
        rows = np.arange(data.X.shape[0]) if scale_from == "all" else split.train
        fx = Standardizer.fit(X[rows])
        fy = Standardizer.fit(data.y[rows, None], drop_constant=False)
    if not KINDS[data.kind].standardize:  # probabilities and counts: their own scale
        fy = Standardizer.identity(1)
    gaps = np.isnan(data.X).any()
    with_gaps = fx.transform(imp.transform(data.X, fill=False)) if gaps else None
    return Prepared(
        X_train=fx.transform(X[split.train]), y_train=fy.transform_target(data.y[split.train]),
        t_train=data.task[split.train],
        X_test=fx.transform(X[split.test]), y_test=fy.transform_target(data.y[split.test]),
        t_test=data.task[split.test], target=fy, features=fx, n_tasks=data.n_tasks, split=split,
        X_train_gaps=None if with_gaps is None else with_gaps[split.train],
        X_test_gaps=None if with_gaps is None else with_gaps[split.test],
        notes=tuple(imp.notes(data.X, data.feature_names)) if gaps else (),
        imputer=imp,
    )


def _check_classes(data: TaskData, split: Split) -> None:
    """Every class must have training rows: a class seen only in the test share cannot be
    learned, and every model would give it probability ~0."""
    if not data.classes:
        return
    present = np.bincount(data.y[split.train].astype(np.int64), minlength=len(data.classes))
    missing = [data.classes[k] for k in np.flatnonzero(present == 0)]
    if missing:
        raise NetscopeError(f"{split.name}: class {missing[0]!r} of target "
                            f"{data.target_name!r} has no training rows (only test rows), so "
                            f"no model can learn it; check the column, or use a protocol "
                            f"whose training rows hold every class.")


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
