"""Row splits of several-target data, and one split made ready for the models: features
imputed and standardized from training rows, each number target standardized from its own
training values (the other kinds as they are)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netscope.data.targets_table import TargetsData
from netscope.data.tasks import Standardizer
from netscope.errors import NetscopeError
from netscope.multitask.protocols.missing import Imputer


@dataclass(frozen=True)
class RowSplit:
    train: np.ndarray
    test: np.ndarray
    name: str


def row_splits(data: TargetsData, count: int, test_fraction: float, seed: int) -> list[RowSplit]:
    """``count`` seeded random splits of the rows (a row's targets stay together), each
    checked: every target needs training and test values, every class training rows."""
    if not 0 < test_fraction < 1:
        raise NetscopeError(f"test fraction must be between 0 and 1, got {test_fraction}.")
    n = data.X.shape[0]
    n_test = int(np.clip(round(test_fraction * n), 1, n - 1))
    splits = []
    for i in range(count):
        order = np.random.default_rng(seed + i).permutation(n)
        split = RowSplit(np.sort(order[n_test:]), np.sort(order[:n_test]),
                         f"random {1 - test_fraction:.0%}/{test_fraction:.0%} of rows "
                         f"(seed {seed + i})")
        _check(data, split)
        splits.append(split)
    return splits


def _check(data: TargetsData, split: RowSplit) -> None:
    have = data.present()
    for j, name in enumerate(data.target_names):
        for side, rows in (("training", split.train), ("test", split.test)):
            if not have[rows, j].any():
                raise NetscopeError(f"{split.name}: target {name!r} has no {side} values; "
                                    f"it needs more rows with a value (or a larger "
                                    f"--test-fraction for test values).")
        if data.classes[j]:
            codes = data.Y[split.train, j]
            seen = np.unique(codes[~np.isnan(codes)]).astype(int)
            lacking = sorted(set(range(len(data.classes[j]))) - set(seen))
            if lacking:
                raise NetscopeError(f"{split.name}: class {data.classes[j][lacking[0]]!r} of "
                                    f"target {name!r} has no training rows, so no model can "
                                    f"learn it.")


@dataclass(frozen=True)
class PreparedTargets:
    """One split: features (imputed, and with gaps for the families that take them),
    targets scaled for fitting, and how to scale predictions back."""

    X_train: np.ndarray
    X_test: np.ndarray
    X_train_gaps: np.ndarray | None
    X_test_gaps: np.ndarray | None
    Y_train: np.ndarray  # scaled (NaN where missing)
    Y_test: np.ndarray  # original scale
    mean: np.ndarray  # (m,) per target: fitted = (y - mean) / scale
    scale: np.ndarray
    split: RowSplit
    imputer: Imputer | None = None  # how gaps were filled, and the features' scaler
    scaler: Standardizer | None = None

    def features(self, native_missing: bool) -> tuple[np.ndarray, np.ndarray]:
        if native_missing and self.X_train_gaps is not None:
            return self.X_train_gaps, self.X_test_gaps
        return self.X_train, self.X_test

    def long(self, X: np.ndarray, Y: np.ndarray):
        """Every present (row, target) of these rows: X rows, targets, values, row ids."""
        r, j = np.nonzero(~np.isnan(Y))
        return X[r], j, Y[r, j], r


def prepare_targets(data: TargetsData, split: RowSplit) -> PreparedTargets:
    imp = Imputer.fit(data.X[split.train])
    X = imp.transform(data.X)
    fx = Standardizer.fit(X[split.train])
    if not fx.keep.any():
        raise NetscopeError(f"{data.name}: no feature varies on the training rows.")
    gaps = fx.transform(imp.transform(data.X, fill=False)) if np.isnan(data.X).any() else None
    m = data.n_targets
    mean, scale = np.zeros(m), np.ones(m)
    for j, kind in enumerate(data.kinds):
        if kind == "regression":
            y = data.Y[split.train, j]
            y = y[~np.isnan(y)]
            mean[j], scale[j] = y.mean(), (y.std() if y.std() > 1e-12 else 1.0)
    Y = (data.Y - mean) / scale
    return PreparedTargets(fx.transform(X[split.train]), fx.transform(X[split.test]),
                           None if gaps is None else gaps[split.train],
                           None if gaps is None else gaps[split.test],
                           Y[split.train], data.Y[split.test], mean, scale, split, imp, fx)
