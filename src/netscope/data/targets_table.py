"""Several targets on the same rows (a student's exam score and attendance; a customer's
click and purchase): each target is a task over the rows that have it.

``TargetsData`` keeps the targets as columns of ``Y`` with NaN where a row lacks one (those
rows train and test the other targets only); each target has its own kind (a number,
yes/no, classes, a count), read and said as for one target (``target_column.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from netscope.data.tabular import _columns, _delimiter_hint, encode_features, read_rows
from netscope.data.target_column import TARGET_KINDS, read_target
from netscope.errors import NetscopeError, shown


@dataclass(frozen=True)
class TargetsData:
    """Features ``X`` (n, d) (NaN: missing), targets ``Y`` (n, m) (NaN: this row lacks the
    target; class codes 0..K-1 for classes), one name, kind and class list per target."""

    X: np.ndarray
    Y: np.ndarray
    target_names: list[str]
    kinds: tuple[str, ...]
    classes: tuple[tuple[str, ...], ...]
    feature_names: list[str]
    name: str = "data"
    notes: dict[str, str] = field(default_factory=dict)
    columns: tuple = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "X", np.asarray(self.X, np.float64))
        Y = np.asarray(self.Y, np.float64)
        object.__setattr__(self, "Y", Y[:, None] if Y.ndim == 1 else Y)
        n, m = self.Y.shape
        if self.X.shape[0] != n:
            raise NetscopeError(f"{self.name}: {self.X.shape[0]} feature rows but {n} rows of "
                                f"targets.")
        if not (len(self.target_names) == len(self.kinds) == len(self.classes) == m):
            raise NetscopeError(f"{self.name}: {m} target columns but {len(self.target_names)}"
                                f" names, {len(self.kinds)} kinds, {len(self.classes)} class "
                                f"lists.")
        if m < 2:
            raise NetscopeError(f"{self.name}: several targets need at least two target "
                                f"columns, got {m}.")

    @property
    def n_targets(self) -> int:
        return self.Y.shape[1]

    def present(self) -> np.ndarray:
        """(n, m) True where a row has the target."""
        return ~np.isnan(self.Y)

    def observations(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For the table rows ``rows``: each present (row, target) pair as (row, target,
        value), row-major (a row's targets together)."""
        have = self.present()[rows]
        r, j = np.nonzero(have)
        return rows[r], j, self.Y[rows[r], j]

    def missing_lines(self) -> list[str]:
        """One line per target that some rows lack: those rows train the others only."""
        have = self.present()
        out = []
        for j, name in enumerate(self.target_names):
            lacking = int((~have[:, j]).sum())
            if lacking:
                out.append(f"{lacking} row(s) have no {name!r}: they train and test the other "
                           f"target(s) only (its loss is masked there)")
        return out

    def __repr__(self) -> str:
        kinds = ", ".join(f"{n} ({k})" for n, k in zip(self.target_names, self.kinds,
                                                      strict=True))
        return (f"TargetsData({self.name!r}: {self.X.shape[0]} rows, {self.X.shape[1]} "
                f"features, targets {kinds})")


def load_targets_table(path: str | Path, targets: Sequence[str],
                       features: Sequence[str] | None = None,
                       target_kind: str | Sequence[str] = "auto",
                       missing: str = "impute") -> TargetsData:
    """Rows of ``path`` with several ``targets``; ``features`` default to every other column.
    ``target_kind``: one kind for all targets or one per target (auto: recognized and said).
    A row without any target is dropped (counted); a row without some targets keeps the
    others."""
    path = Path(path)
    targets = [str(t) for t in targets]
    twice = [t for i, t in enumerate(targets) if t in targets[:i]]
    if twice:
        raise NetscopeError(f"--target-column names {shown(twice[0])} twice; give each target "
                            f"once.")
    kinds = [target_kind] * len(targets) if isinstance(target_kind, str) else list(target_kind)
    if len(kinds) != len(targets):
        raise NetscopeError(f"--target-kind gives {len(kinds)} kinds for {len(targets)} "
                            f"targets; give one kind for all, or one per target.")
    for k in kinds:
        if k not in TARGET_KINDS:
            raise NetscopeError(f"--target-kind must be one of {', '.join(TARGET_KINDS)}, "
                                f"got {k!r}.")
    df = read_rows(path)
    if df.shape[0] == 0:
        raise NetscopeError(f"{path}: the table has a header but no rows.")
    for col in (*targets, *(features or [])):
        if col not in df.columns:
            raise NetscopeError(f"{path}: no column {shown(col)}; the columns are "
                                f"{_columns(df.columns)}.{_delimiter_hint(df.columns)}")
    clash = [c for c in (features or []) if c in targets]
    if clash:
        raise NetscopeError(f"{path}: column {shown(clash[0])} is a target and cannot also be "
                            f"a feature; drop it from the features.")
    any_target = df[targets].notna().any(axis=1).to_numpy()
    notes: dict[str, str] = {}
    if not any_target.all():
        notes["rows without targets"] = (f"{int((~any_target).sum())} row(s) without any "
                                         f"target value dropped")
        df = df[any_target].reset_index(drop=True)
    Y = np.full((len(df), len(targets)), np.nan)
    names_k, classes = [], []
    for j, (col, kind) in enumerate(zip(targets, kinds, strict=True)):
        goal = read_target(df[col], col, str(path), kind)
        Y[goal.keep if goal.keep is not None else slice(None), j] = goal.y
        names_k.append(goal.kind)
        classes.append(goal.classes)
        for i, line in enumerate(goal.notes):
            if "dropped" not in line:  # a row lacking one target is kept for the others
                notes[f"target {col} {i + 1}"] = line
    features = list(features) if features else [c for c in df.columns if c not in targets]
    if not features:
        raise NetscopeError(f"{path}: no feature columns besides the targets.")
    X, fnames, spec = encode_features(df, features, path, missing, notes)
    return TargetsData(X, Y, targets, tuple(names_k), tuple(classes), fnames, path.name,
                       notes, tuple(spec))
