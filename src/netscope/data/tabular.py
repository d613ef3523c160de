"""A user's own grouped data: one CSV or Parquet file with a task column and a target column.

Categorical (text) feature columns are one-hot encoded; numeric ones are kept as numbers
(the protocol standardizes every feature with training statistics later).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from netscope.data.target_column import read_target
from netscope.data.tasks import TaskData
from netscope.errors import NetscopeError, first_line, row_at, shown

MISSING_LEVEL = "(missing)"  # the level a missing text value gets


def read_rows(path: Path) -> pd.DataFrame:
    """A table (CSV in any common delimiter or encoding, or Parquet) as read for netscope."""
    if not path.is_file():
        raise NetscopeError(f"{path}: file not found.")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            try:
                import pyarrow
            except ImportError:
                raise NetscopeError(
                    f"{path}: reading Parquet needs pyarrow; `pip install netscope[parquet]` "
                    f"or save the table as CSV."
                ) from None
            try:
                table = pd.read_parquet(path)
            except (pyarrow.ArrowException, OSError, ValueError) as exc:
                raise NetscopeError(f"{path}: cannot read as Parquet ({type(exc).__name__}: "
                                    f"{first_line(exc)}); is the file complete?") from None
            return _flat(table, path)
        encoding, sep = sniff(path)
        read = lambda **kw: pd.read_csv(path, encoding=encoding, sep=sep, **kw)  # noqa: E731
        return _checked_header(read(), read(nrows=1, header=None), path)
    except pd.errors.EmptyDataError:
        raise NetscopeError(f"{path}: the file is empty (no header, no rows).") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise NetscopeError(f"{path}: cannot parse as a table ({exc}).") from None


def _flat(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The table, unless a column holds nested values (Parquet lists, structs, maps), which
    no model here reads: they are named, instead of failing later as odd numbers."""
    nested = [str(c) for c in df.columns if df[c].dtype == object and df[c].map(
        lambda v: isinstance(v, list | tuple | dict | set | np.ndarray)).any()]
    if nested:
        names = ", ".join(shown(n) for n in nested[:5]) + (" ..." if len(nested) > 5 else "")
        raise NetscopeError(f"{path}: column(s) {names} hold nested values (lists, structs or "
                            f"maps); netscope reads flat tables: give each field its own "
                            f"column, or drop them.")
    return df


BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
DELIMITERS = (",", ";", "\t", "|")


def sniff(path: Path) -> tuple[str, str]:
    """(encoding, delimiter) of a CSV file from its first bytes: a byte-order mark names
    UTF-8, UTF-16 or UTF-32 (Excel's "Unicode text" is UTF-16); otherwise it must be
    UTF-8. The delimiter is the one of , ; tab | that the header line holds most of (a
    comma when there is a tie), so a European semicolon-separated export reads as is."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    encoding = next((name for bom, name in BOMS if head.startswith(bom)), None)
    if encoding is None:
        if head[:200].count(b"\x00") > len(head[:200]) // 4:
            raise NetscopeError(f"{path}: looks like UTF-16 text without a byte-order mark; "
                                f"save it as UTF-8 (or UTF-16 with its mark).")
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not just a character cut at the 64 KB mark
                raise NetscopeError(
                    f"{path}: not UTF-8 text (byte 0x{head[exc.start]:02x} at position "
                    f"{exc.start}; Latin-1 or Windows-1252?); save it as UTF-8.") from None
        encoding = "utf-8"
    text = head.decode(encoding, errors="ignore")
    first = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    counts = {d: first.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return encoding, best if counts[best] > 0 else ","


def _checked_header(df: pd.DataFrame, header: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The table, unless its header names a column twice (pandas would quietly rename the
    second 'y' to 'y.1' and treat it as a feature)."""
    names = [str(v) for v in header.iloc[0]] if len(header) else [str(c) for c in df.columns]
    seen, twice = set(), []
    for name in names:
        if name in seen and name not in twice:
            twice.append(name)
        seen.add(name)
    if twice:
        shown = ", ".join(repr(_short(n)) for n in twice[:3])
        raise NetscopeError(f"{path}: the header names {shown} more than once; give every "
                            f"column its own name.")
    return df


def _check_task_names(labels: np.ndarray, task: str, path: Path) -> None:
    """Task names end up in tables, plots and pages: a blank one, or one with a line break,
    a tab or an invisible formatting character (a right-to-left override turns what follows
    around) would break them or mislead; each is refused with its row, shown escaped."""
    for row, name in enumerate(labels):
        if not name.strip():
            raise NetscopeError(f"{path}: task column {shown(task)} holds a blank name "
                                f"{shown(name)} at {row_at(row, True)}; give every task a "
                                f"visible name.")
        if not name.isprintable():
            odd = next(ch for ch in name if not ch.isprintable())
            raise NetscopeError(f"{path}: task column {shown(task)} holds {shown(name)} at "
                                f"{row_at(row, True)}, with the invisible character "
                                f"U+{ord(odd):04X} (line breaks, tabs and text-direction "
                                f"marks break the report's tables); remove it.")


def _numeric_or_error(col: pd.Series, name: str, path: Path,
                      missing_ok: bool = False) -> np.ndarray:
    values = pd.to_numeric(col, errors="coerce")
    bad = values.isna() & col.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise NetscopeError(
            f"{path}: column {shown(name)} must be numeric but {row_at(row, True)} holds "
            f"{shown(col.iloc[row])}."
        )
    if values.isna().any() and not missing_ok:
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise NetscopeError(f"{path}: column {shown(name)} has a missing value at "
                            f"{row_at(row, True)}.")
    return values.to_numpy(dtype=np.float64)


def _looks_numeric(col: pd.Series) -> bool:
    """Mostly numbers with a few stray strings is a data error, not a category."""
    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        return True
    parsed = pd.to_numeric(col.dropna(), errors="coerce")
    return len(parsed) > 0 and parsed.notna().mean() >= 0.5


def load_table(path: str | Path, task: str, target: str,
               features: Sequence[str] | None = None, target_kind: str = "auto",
               missing: str = "impute") -> TaskData:
    """Load grouped rows from ``path``; ``features`` defaults to every other column.
    ``target_kind``: auto (recognized, and said in ``notes``), regression, binary,
    multiclass or count. Rows without a target are dropped; missing feature values stay
    missing (NaN) for the protocols to impute and a missing text value is its own level, or
    (``missing="error"``) the first one is an error."""
    if missing not in ("impute", "error"):
        raise NetscopeError(f"--missing must be impute or error, got {missing!r}.")
    path = Path(path)
    df = read_rows(path)
    if df.shape[0] == 0:
        raise NetscopeError(f"{path}: the table has a header but no rows.")
    for col in (task, target, *(features or [])):
        if col not in df.columns:
            raise NetscopeError(f"{path}: no column {shown(col)}; the columns are "
                                f"{_columns(df.columns)}.{_delimiter_hint(df.columns)}")
    clash = [c for c in (features or []) if c in (task, target)]
    if clash:
        role = "target" if clash[0] == target else "task"
        raise NetscopeError(f"{path}: column '{clash[0]}' is the {role} column and cannot also "
                            f"be a feature; drop it from the features.")
    features = list(features) if features else [c for c in df.columns if c not in (task, target)]
    if not features:
        raise NetscopeError(f"{path}: no feature columns besides '{task}' and '{target}'.")
    if df[task].isna().any():
        row = int(np.flatnonzero(df[task].isna().to_numpy())[0])
        raise NetscopeError(f"{path}: task column {shown(task)} is empty at {row_at(row, True)}.")
    goal = read_target(df[target], str(target), str(path), target_kind)
    if goal.keep is not None and not goal.keep.all():
        df = df[goal.keep].reset_index(drop=True)
    notes = {f"target {i + 1}": n for i, n in enumerate(goal.notes)}
    X, names, spec = encode_features(df, features, path, missing, notes)
    labels = df[task].astype(str).to_numpy()
    _check_task_names(labels, task, path)
    task_names = list(dict.fromkeys(labels))  # first-seen order
    index = {name: i for i, name in enumerate(task_names)}
    return TaskData(
        X=X, y=goal.y, task=np.array([index[v] for v in labels]),
        task_names=task_names, feature_names=names, name=path.name, target_name=str(target),
        notes=notes, kind=goal.kind, classes=goal.classes, columns=tuple(spec),
        task_column=str(task),
    )


def encode_features(df: pd.DataFrame, features: Sequence[str], path: Path, missing: str,
                    notes: dict[str, str]) -> tuple[np.ndarray, list[str], list]:
    """The feature columns as numbers: numeric ones as they are (gaps NaN, or an error with
    ``missing="error"``), text ones one-hot (a missing value its own level, said in
    ``notes``). Returns X, the encoded names, and per column (name, levels or None)."""
    blocks, names, spec = [], [], []
    for col in features:
        series = df[col]
        if _looks_numeric(series):
            blocks.append(_numeric_or_error(series, col, path,
                                            missing_ok=missing == "impute")[:, None])
            names.append(str(col))
            spec.append((str(col), None))
        else:
            if missing == "error" and series.isna().any():
                row = int(np.flatnonzero(series.isna().to_numpy())[0])
                raise NetscopeError(f"{path}: column {shown(col)} has a missing value at "
                                    f"{row_at(row, True)} (--missing error).")
            text = series.astype(str).where(series.notna(), MISSING_LEVEL)
            if series.isna().any():
                notes[f"missing {col}"] = (f"{int(series.isna().sum())} missing value(s) in "
                                           f"text column {shown(col)} kept as the level "
                                           f"{MISSING_LEVEL}")
            levels = sorted(text.unique())
            onehot = (text.to_numpy()[:, None] == np.array(levels)[None, :])
            blocks.append(onehot.astype(np.float64))
            names.extend(f"{col}={level}" for level in levels)
            spec.append((str(col), tuple(levels)))
    return np.hstack(blocks), names, spec


def _columns(names, most: int = 20) -> str:
    listed = ", ".join(_short(c) for c in list(names)[:most])
    return listed + (f", ... ({len(names)} in all)" if len(names) > most else "")


def _delimiter_hint(columns) -> str:
    """A one-column header holding ';', tabs or '|' is a file with another delimiter."""
    if len(columns) != 1:
        return ""
    for mark, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
        if mark in str(columns[0]):
            return (f" The header looks separated by {name}: netscope reads such files "
                    f"itself; this one could not be split.")
    return ""


def _short(value, limit: int = 40) -> str:
    """A value for a message, cut to ``limit`` characters."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."
