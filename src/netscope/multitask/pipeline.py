"""From new rows of a table to predictions of a model saved by `netscope multitask run`.

A model in a comparison is fit on prepared features (text columns one-hot, gaps filled from
training rows with indicator columns, scaled with the protocol's statistics) and task
positions. ``Preprocessing`` keeps all of that as JSON beside the saved model
(``preprocessing.json``), so ``predict_table`` takes rows as they come in the user's file,
with task names, and gives numbers, or probabilities per class and labels. A task not in
the training rows gets the model's population-level prediction (said in the result).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from netscope.data.tasks import TaskData
from netscope.errors import NetscopeError, shown
from netscope.multitask.protocols.missing import Imputer
from netscope.multitask.protocols.prepare import Prepared

FILE = "preprocessing.json"
MISSING_LEVEL = "(missing)"  # as data/tabular.py reads a missing text value


@dataclass(frozen=True)
class Preprocessing:
    """How a table's rows became a model's input, and how its output reads."""

    task_column: str
    target: str
    kind: str
    classes: list[str]
    columns: list[tuple[str, list[str] | None]]  # name, and text columns' levels
    tasks: list[str]  # task names by the position the model knows them
    gap_columns: list[int]  # encoded columns with training gaps (indicator columns)
    medians: list[float]  # fill values per encoded column (training medians)
    mean: list[float]  # feature scaler on [encoded, indicators]
    scale: list[float]
    keep: list[bool]
    target_mean: float
    target_scale: float
    gaps_as_nan: bool  # the family takes missing values as they are (trees)

    @classmethod
    def of(cls, data: TaskData, prep: Prepared, gaps_as_nan: bool) -> Preprocessing:
        if not data.columns or data.task_column is None:
            raise NetscopeError(f"{data.name}: its rows did not come from a table read by "
                                f"netscope, so saved models cannot predict from table rows.")
        gaps = prep.imputer.columns if prep.imputer is not None else np.zeros(0, np.int64)
        with np.errstate(all="ignore"):  # a column without any training value: 0
            train = data.X[prep.split.train]
            fill = np.array([np.median(c[~np.isnan(c)]) if (~np.isnan(c)).any() else 0.0
                             for c in train.T])
        return cls(data.task_column, data.target_name, data.kind, list(data.classes),
                   [(c, None if lv is None else list(lv)) for c, lv in data.columns],
                   list(data.task_names), gaps.tolist(), fill.tolist(),
                   prep.features.mean.tolist(), prep.features.scale.tolist(),
                   prep.features.keep.tolist(), float(prep.target.mean[0]),
                   float(prep.target.scale[0]), gaps_as_nan)

    def write(self, folder: Path) -> Path:
        from netscope.files.atomic import write_text

        return write_text(Path(folder) / FILE, json.dumps(asdict(self), indent=1))

    @classmethod
    def read(cls, folder: Path) -> Preprocessing:
        path = Path(folder) / FILE
        if not path.is_file():
            raise NetscopeError(f"{folder}: no {FILE} beside the model; models saved by "
                                f"`netscope multitask run --csv ... --save-models` have it "
                                f"(a model saved from Python predicts from arrays: "
                                f"load_model(folder).predict(X, tasks)).")
        try:
            raw = json.loads(path.read_text())
            return cls(**{**raw, "columns": [(c, lv) for c, lv in raw["columns"]]})
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            raise NetscopeError(f"{path}: unreadable ({exc}).") from None

    # -- rows -> model input -----------------------------------------------------------------
    def features(self, df: pd.DataFrame, where: str) -> tuple[np.ndarray, list[str]]:
        """The model's input for the rows of ``df``, and notes (unknown text levels)."""
        return encode_rows(self, df, where)

    def task_positions(self, df: pd.DataFrame, where: str) -> np.ndarray:
        """Each row's task position as the model knows it; -1 for a task not seen."""
        if self.task_column not in df.columns:
            raise NetscopeError(f"{where}: no task column {shown(self.task_column)}.")
        labels = df[self.task_column]
        if labels.isna().any():
            row = int(np.flatnonzero(labels.isna().to_numpy())[0])
            raise NetscopeError(f"{where}: task column {shown(self.task_column)} is empty at "
                                f"row {row + 1}.")
        index = {name: i for i, name in enumerate(self.tasks)}
        return np.array([index.get(v, -1) for v in labels.astype(str)], np.int64)

    def outputs(self, pred: np.ndarray) -> dict[str, Any]:
        """Prediction columns: the number (in the target's units), or a probability per
        class and the most probable class."""
        name = self.target
        if self.kind == "binary":
            pred = np.column_stack([1.0 - pred, pred])
        if pred.ndim == 2:
            cols = {f"p_{c}": pred[:, k] for k, c in enumerate(self.classes)}
            return {**cols, f"predicted_{name}": np.asarray(self.classes)[pred.argmax(1)]}
        return {f"predicted_{name}": pred * self.target_scale + self.target_mean}


def encode_rows(spec, df: pd.DataFrame, where: str) -> tuple[np.ndarray, list[str]]:
    """The model input for the rows of ``df`` as ``spec`` (a saved preprocessing: its
    ``columns``, ``gap_columns``, ``medians``, ``mean``, ``scale``, ``keep``,
    ``gaps_as_nan``) says, and notes (unknown text levels)."""
    missing = [c for c, _ in spec.columns if c not in df.columns]
    if missing:
        raise NetscopeError(f"{where}: no column {shown(missing[0])}, which the model was "
                            f"trained on; its columns: "
                            f"{', '.join(c for c, _ in spec.columns)}.")
    blocks, notes = [], []
    for col, levels in spec.columns:
        series = df[col]
        if levels is None:
            values = pd.to_numeric(series, errors="coerce")
            bad = values.isna() & series.notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise NetscopeError(f"{where}: column {shown(col)} must be numeric, but "
                                    f"row {row + 1} holds {shown(series.iloc[row])}.")
            blocks.append(values.to_numpy(np.float64)[:, None])
            continue
        text = series.astype(str).where(series.notna(), MISSING_LEVEL).to_numpy()
        unknown = ~np.isin(text, levels)
        if unknown.any():
            notes.append(f"{int(unknown.sum())} row(s) hold level(s) of {shown(col)} not "
                         f"seen in training (e.g. {shown(text[unknown][0])}): no level "
                         f"of it is set for them")
        blocks.append((text[:, None] == np.array(levels)[None, :]).astype(np.float64))
    X = np.hstack(blocks)
    imp = Imputer(np.asarray(spec.gap_columns, np.int64), np.asarray(spec.medians))
    X = imp.transform(X, fill=not spec.gaps_as_nan)  # any gap: its training median
    keep = np.asarray(spec.keep, bool)
    return ((X - np.asarray(spec.mean)) / np.asarray(spec.scale))[:, keep], notes


def predict_table(folder: str | Path, df: pd.DataFrame, where: str = "table"
                  ) -> tuple[pd.DataFrame, list[str]]:
    """The rows of ``df`` with the saved model's prediction columns added, and notes (rows
    of unseen tasks, unknown levels)."""
    from netscope.multitask.base import load_model

    folder = Path(folder)
    pre = Preprocessing.read(folder)
    model = load_model(folder)
    X, notes = pre.features(df, where)
    t = pre.task_positions(df, where)
    if (t < 0).any():
        notes.append(f"{int((t < 0).sum())} row(s) of "
                     f"{len(set(df[pre.task_column].astype(str)[t < 0]))} task(s) not in the "
                     f"training rows get the population-level prediction")
    pred = model.predict(X, t, unseen="population")
    out = df.copy()
    for key, values in pre.outputs(pred).items():
        out[key] = values
    return out, notes
