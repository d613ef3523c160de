"""A table's target column read as the kind of target it is: numbers, two classes, several
classes, or counts; chosen by ``--target-kind`` or recognized (``auto``) and always said."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from netscope.errors import NetscopeError, row_at, shown

TARGET_KINDS = ("auto", "regression", "binary", "multiclass", "count")
MAX_CLASSES = 100  # more distinct values than this is not a class target


@dataclass
class Target:
    y: np.ndarray  # numbers, or class codes 0..K-1
    kind: str
    classes: tuple[str, ...] = ()
    keep: np.ndarray | None = None  # rows with a target (None: all)
    notes: list[str] = field(default_factory=list)


def read_target(col: pd.Series, name: str, where: str, kind: str = "auto") -> Target:
    """The column as a target of ``kind``; rows without a value are dropped and counted."""
    if kind not in TARGET_KINDS:
        raise NetscopeError(f"--target-kind must be one of {', '.join(TARGET_KINDS)}, "
                            f"got {kind!r}.")
    missing = col.isna().to_numpy()
    if missing.all():
        raise NetscopeError(f"{where}: the target column {shown(name)} is empty on every row.")
    notes = [f"{int(missing.sum())} row(s) without a target value dropped"] \
        if missing.any() else []
    values = col[~missing]
    numeric = pd.to_numeric(values, errors="coerce") if not pd.api.types.is_bool_dtype(values) \
        else values.astype(float)
    is_number = bool(numeric.notna().all()) and not pd.api.types.is_bool_dtype(values)
    distinct = pd.unique(values.astype(str)) if not is_number else np.unique(numeric)
    if len(distinct) < 2:
        raise NetscopeError(f"{where}: the target column {shown(name)} is constant (every "
                            f"value {distinct[0]}): there is nothing to predict.")
    if kind == "auto":
        stray = numeric.isna().to_numpy()
        if not is_number and stray.mean() <= 0.5 and not pd.api.types.is_bool_dtype(values):
            row = int(np.flatnonzero(stray)[0])  # mostly numbers: a stray value is an error
            raise NetscopeError(f"{where}: column {shown(name)} must be numeric but "
                                f"{row_at(_row(missing, row), True)} holds "
                                f"{shown(values.iloc[row])}.")
        kind = _recognize(is_number, numeric, distinct, notes, name, where)
    if kind == "regression":
        if not is_number:
            row = int(np.flatnonzero(numeric.isna().to_numpy())[0])
            raise NetscopeError(f"{where}: --target-kind regression needs numbers, but "
                                f"{shown(name)} holds {shown(values.iloc[row])} at "
                                f"{row_at(_row(missing, row), True)}; use --target-kind "
                                f"binary or multiclass for classes.")
        return Target(numeric.to_numpy(np.float64), kind, (), ~missing, notes)
    if kind == "count":
        if not is_number:
            raise NetscopeError(f"{where}: --target-kind count needs whole numbers >= 0, but "
                                f"{shown(name)} holds text.")
        y = numeric.to_numpy(np.float64)
        bad = np.flatnonzero((y < 0) | (y != np.round(y)))
        if bad.size:
            raise NetscopeError(f"{where}: --target-kind count needs whole numbers >= 0, but "
                                f"{row_at(_row(missing, int(bad[0])), True)} holds {y[bad[0]]:g} "
                                f"({bad.size} row(s)); use --target-kind regression.")
        return Target(y, kind, (), ~missing, notes)
    return _classes(values, numeric if is_number else None, kind, name, where, ~missing, notes)


def _recognize(is_number: bool, numeric: pd.Series, distinct, notes: list[str],
               name: str, where: str) -> str:
    """Text, booleans and 0/1 numbers are classes; other numbers are a regression target
    (two other values are suggested as yes/no, whole numbers >= 0 with many zeros as
    counts: said, never chosen)."""
    n_distinct = len(distinct)
    if n_distinct == 2 and (not is_number or set(np.asarray(distinct, float)) == {0.0, 1.0}):
        notes.append(f"target {shown(name)} has two values: fitted as yes/no (binary); "
                     f"--target-kind regression fits it as a number")
        return "binary"
    if n_distinct == 2:
        notes.append(f"target {shown(name)} has two values only: fitted as a number; "
                     f"--target-kind binary fits it as yes/no")
    if not is_number:
        if n_distinct > MAX_CLASSES:
            raise NetscopeError(f"{where}: the target column {shown(name)} holds text with "
                                f"{n_distinct} distinct values, too many for classes (at most "
                                f"{MAX_CLASSES}); if they are numbers, fix the column and use "
                                f"--target-kind regression.")
        notes.append(f"target {shown(name)} holds {n_distinct} classes (multiclass)")
        return "multiclass"
    y = numeric.to_numpy(np.float64)
    if (y >= 0).all() and (y == np.round(y)).all() and (y == 0).mean() >= 0.2:
        notes.append(f"target {shown(name)} holds whole numbers >= 0 with {(y == 0).mean():.0%} "
                     f"zeros: if these are counts, --target-kind count fits them as counts")
    return "regression"


def _classes(values: pd.Series, numeric: pd.Series | None, kind: str, name: str, where: str,
             keep: np.ndarray, notes: list[str]) -> Target:
    """Class codes in sorted order of the labels (numbers by value, so 1 is the positive
    class of a 0/1 target)."""
    if numeric is not None:
        levels = np.unique(numeric.to_numpy(np.float64))
        codes = np.searchsorted(levels, numeric.to_numpy(np.float64))
        names = tuple(f"{v:g}" for v in levels)
    else:
        text = values.astype(str).to_numpy()
        levels = np.unique(text)
        codes = np.searchsorted(levels, text)
        names = tuple(str(v) for v in levels)
    k = len(names)
    if kind == "binary" and k != 2:
        raise NetscopeError(f"{where}: --target-kind binary needs exactly two classes, but "
                            f"{shown(name)} holds {k} ({', '.join(map(shown, names[:5]))}"
                            f"{', ...' if k > 5 else ''}).")
    if kind == "multiclass" and k > MAX_CLASSES:
        raise NetscopeError(f"{where}: {shown(name)} holds {k} classes, more than "
                            f"{MAX_CLASSES}; is it a number? use --target-kind regression.")
    if kind == "multiclass" and k == 2:
        kind = "binary"
        notes.append("two classes: fitted as yes/no (binary)")
    return Target(codes.astype(np.float64), kind, names, keep, notes)


def _row(missing: np.ndarray, i: int) -> int:
    """The table row of the i-th row that has a target."""
    return int(np.flatnonzero(~missing)[i])
