"""Grouped tabular data: rows, their task, and the scalers and splits that act on them.

Every model family and every protocol works on this one structure, so a user's own
CSV, the school data and the survey all flow through the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from netscope.errors import NetscopeError, row_at, shown


@dataclass(frozen=True)
class TaskData:
    """Features ``X`` (n, d), targets ``y`` (n,), and ``task`` (n,) indices into ``task_names``."""

    X: np.ndarray
    y: np.ndarray
    task: np.ndarray
    task_names: list[str]
    feature_names: list[str]
    name: str = "data"
    target_name: str = "y"
    notes: dict[str, str] = field(default_factory=dict)
    # which built-in reference data set this is ("school", "survey"); None for a user's own
    # data, so a file that happens to be called school.csv never gets the course's protocol
    reference: str | None = None
    # the target's kind (regression, binary, multiclass, count); for classes, ``y`` holds
    # codes 0..K-1 and ``classes`` their names in code order
    kind: str = "regression"
    classes: tuple[str, ...] = ()
    # how a table's columns became X, for predicting on new rows of the same table: per
    # column, its name and (text columns) its levels in one-hot order; () when not from one
    columns: tuple[tuple[str, tuple[str, ...] | None], ...] = ()
    task_column: str | None = None

    def __post_init__(self) -> None:
        X = np.asarray(self.X, dtype=np.float64)
        y = np.asarray(self.y, dtype=np.float64).reshape(-1)
        task = np.asarray(self.task, dtype=np.int64).reshape(-1)
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "task", task)
        _validate(self)

    @property
    def n_tasks(self) -> int:
        return len(self.task_names)

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    def task_sizes(self) -> np.ndarray:
        return np.bincount(self.task, minlength=self.n_tasks)

    def rows_of(self, t: int) -> np.ndarray:
        return np.flatnonzero(self.task == t)

    def __repr__(self) -> str:
        sizes = self.task_sizes()
        return (f"TaskData({self.name!r}: {self.X.shape[0]} rows, {self.n_tasks} tasks of "
                f"{sizes.min()}-{sizes.max()} rows, {self.n_features} features, target "
                f"{self.target_name!r})")

    def _repr_html_(self) -> str:
        import html

        from netscope.render.notebook import fragment, table_html

        sizes = self.task_sizes()
        rows = [("rows", self.X.shape[0]), ("tasks", self.n_tasks),
                ("rows per task", f"{sizes.min()} to {sizes.max()} (median "
                                  f"{np.median(sizes):g})"),
                ("features", ", ".join(self.feature_names[:12])
                 + (f", ... ({self.n_features} in all)" if self.n_features > 12 else "")),
                ("target", f"{self.target_name} (mean {self.y.mean():.4g}, SD "
                           f"{self.y.std():.4g})"),
                ("built-in data set", self.reference or "no (a user's own data)")]
        return fragment(f"<p><b>{html.escape(self.name)}</b></p>" + table_html(("", ""), rows))


def _validate(d: TaskData) -> None:
    if d.X.ndim != 2:
        raise NetscopeError(f"{d.name}: features must be a 2-D table, got shape {d.X.shape}.")
    n = d.X.shape[0]
    if n == 0:
        raise NetscopeError(f"{d.name}: the data set has no rows.")
    if d.y.shape[0] != n or d.task.shape[0] != n:
        raise NetscopeError(
            f"{d.name}: {n} feature rows but {d.y.shape[0]} targets and {d.task.shape[0]} task ids."
        )
    if len(d.feature_names) != d.X.shape[1]:
        raise NetscopeError(
            f"{d.name}: {d.X.shape[1]} feature columns but {len(d.feature_names)} names."
        )
    bad_cols = np.flatnonzero(np.isinf(d.X).any(axis=0))
    if bad_cols.size:
        col = bad_cols[0]
        row = int(np.flatnonzero(np.isinf(d.X[:, col]))[0])
        raise NetscopeError(
            f"{d.name}: feature column {shown(d.feature_names[col])} has an infinite value "
            f"(first at {row_at(row)}); fix or drop those rows (missing values, NaN, are "
            f"taken)."
        )
    empty = np.flatnonzero(np.isnan(d.X).all(axis=0))
    if empty.size:
        raise NetscopeError(f"{d.name}: feature column {shown(d.feature_names[empty[0]])} is "
                            f"missing on every row; drop it.")
    if not np.isfinite(d.y).all():
        row = int(np.flatnonzero(~np.isfinite(d.y))[0])
        raise NetscopeError(
            f"{d.name}: target {shown(d.target_name)} has a missing or infinite value "
            f"(first at {row_at(row)})."
        )
    _validate_kind(d)
    if d.task.min() < 0 or d.task.max() >= len(d.task_names):
        raise NetscopeError(f"{d.name}: task ids must index into the {len(d.task_names)} names.")
    sizes = np.bincount(d.task, minlength=len(d.task_names))
    small = [d.task_names[i] for i in np.flatnonzero(sizes < 2)]
    if small:
        raise NetscopeError(
            f"{d.name}: task {shown(small[0])} has {int(sizes[d.task_names.index(small[0])])} "
            f"row(s); "
            f"every task needs at least 2 (one to train on, one to test). "
            f"{len(small)} task(s) affected: drop or merge them."
        )


def _validate_kind(d: TaskData) -> None:
    """Class codes 0..K-1 with K names; counts whole and >= 0."""
    if d.kind in ("binary", "multiclass"):
        k = len(d.classes)
        if k < 2 or (d.kind == "binary") != (k == 2):
            raise NetscopeError(f"{d.name}: a {d.kind} target needs "
                                f"{'2' if d.kind == 'binary' else 'at least 3'} class names, "
                                f"got {k}.")
        bad = np.flatnonzero((d.y != np.round(d.y)) | (d.y < 0) | (d.y >= k))
        if bad.size:
            raise NetscopeError(f"{d.name}: class codes must be 0..{k - 1}; "
                                f"{row_at(int(bad[0]))} holds {d.y[bad[0]]:g}.")
    elif d.kind == "count":
        bad = np.flatnonzero((d.y < 0) | (d.y != np.round(d.y)))
        if bad.size:
            raise NetscopeError(f"{d.name}: a count target must be whole numbers >= 0, but "
                                f"{row_at(int(bad[0]))} holds {d.y[bad[0]]:g} ({bad.size} "
                                f"row(s)); use --target-kind regression for other numbers.")
    elif d.kind != "regression":
        raise NetscopeError(f"{d.name}: unknown target kind {d.kind!r}.")


@dataclass(frozen=True)
class Split:
    """Train and test row indices into one TaskData, with a human name for reports."""

    train: np.ndarray
    test: np.ndarray
    name: str = "split"
    new_tasks: bool = False  # some tasks are held out whole (tested, never trained on)

    def check(self, data: TaskData) -> None:
        """Every task must have rows on both sides, or per-task models cannot be fit or
        scored; a new-tasks split holds some tasks out whole (and may test only some)."""
        n = data.X.shape[0]
        for side, idx in (("train", self.train), ("test", self.test)):
            if idx.size == 0:
                raise NetscopeError(f"{self.name}: the {side} set is empty.")
            if idx.min() < 0 or idx.max() >= n:
                raise NetscopeError(f"{self.name}: {side} index out of range for {n} rows.")
        if np.intersect1d(self.train, self.test).size:
            raise NetscopeError(f"{self.name}: train and test rows overlap.")
        for side, idx in (("train", self.train), ("test", self.test)):
            if self.new_tasks:
                break
            sizes = np.bincount(data.task[idx], minlength=data.n_tasks)
            empty = np.flatnonzero(sizes == 0)
            if empty.size:
                raise NetscopeError(
                    f"{self.name}: task {shown(data.task_names[empty[0]])} has no {side} rows "
                    f"({empty.size} task(s) affected)."
                )


@dataclass(frozen=True)
class Standardizer:
    """Column means and scales; constant columns are dropped (they carry no information)."""

    mean: np.ndarray
    scale: np.ndarray
    keep: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, drop_constant: bool = True) -> Standardizer:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        mean, std = X.mean(axis=0), X.std(axis=0)
        keep = std > 1e-12 if drop_constant else np.ones(X.shape[1], bool)
        return cls(mean=mean, scale=np.where(std > 1e-12, std, 1.0), keep=keep)

    @classmethod
    def identity(cls, n_cols: int, keep: np.ndarray | None = None) -> Standardizer:
        keep = np.ones(n_cols, bool) if keep is None else keep
        return cls(mean=np.zeros(n_cols), scale=np.ones(n_cols), keep=keep)

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return ((X - self.mean) / self.scale)[:, self.keep]

    def transform_target(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, dtype=np.float64) - self.mean[0]) / self.scale[0]

    def inverse_target(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, dtype=np.float64) * self.scale[0] + self.mean[0]
