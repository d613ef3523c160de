"""Several-target models saved by `netscope multitask run --csv ... --target-column a,b
--save-models`, and new rows of the table predicted with them.

A family's folder holds ``targets_preprocessing.json`` (how table rows become the input, and
each target's name, kind, classes and scaling) and either the one model of every target
(the networks that learn them together) or one model per target in a subfolder named by
the target (the independent families).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from netscope.data.targets_table import TargetsData
from netscope.errors import NetscopeError
from netscope.multitask.pipeline import encode_rows
from netscope.multitask.several.prepare import PreparedTargets

FILE = "targets_preprocessing.json"


@dataclass(frozen=True)
class TargetsPreprocessing:
    family: str
    together: bool  # one model of every target (else one per target, in subfolders)
    targets: list[str]
    kinds: list[str]
    classes: list[list[str]]
    target_mean: list[float]
    target_scale: list[float]
    columns: list[tuple[str, list[str] | None]]
    gap_columns: list[int]
    medians: list[float]
    mean: list[float]
    scale: list[float]
    keep: list[bool]
    gaps_as_nan: bool

    @classmethod
    def of(cls, data: TargetsData, prep: PreparedTargets, family: str, together: bool,
           gaps_as_nan: bool) -> TargetsPreprocessing:
        if not data.columns:
            raise NetscopeError(f"{data.name}: its rows did not come from a table read by "
                                f"netscope, so saved models cannot predict from table rows.")
        with np.errstate(all="ignore"):  # a column without any training value: 0
            train = data.X[prep.split.train]
            fill = [float(np.median(c[~np.isnan(c)])) if (~np.isnan(c)).any() else 0.0
                    for c in train.T]
        return cls(family, together, list(data.target_names), list(data.kinds),
                   [list(c) for c in data.classes], prep.mean.tolist(), prep.scale.tolist(),
                   [(c, None if lv is None else list(lv)) for c, lv in data.columns],
                   prep.imputer.columns.tolist(), fill, prep.scaler.mean.tolist(),
                   prep.scaler.scale.tolist(), prep.scaler.keep.tolist(), gaps_as_nan)

    def write(self, folder: Path) -> Path:
        from netscope.files.atomic import write_text

        return write_text(Path(folder) / FILE, json.dumps(asdict(self), indent=1))

    @classmethod
    def read(cls, folder: Path) -> TargetsPreprocessing:
        path = Path(folder) / FILE
        try:
            raw = json.loads(path.read_text())
            return cls(**{**raw, "columns": [(c, lv) for c, lv in raw["columns"]]})
        except (json.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
            raise NetscopeError(f"{path}: unreadable ({exc}).") from None

    def outputs(self, j: int, pred: np.ndarray) -> dict[str, np.ndarray]:
        """Target j's prediction columns: the number in its units, or a probability per
        class and the most probable class."""
        name, kind, classes = self.targets[j], self.kinds[j], self.classes[j]
        if kind == "binary":
            pred = np.column_stack([1.0 - pred, pred])
        if pred.ndim == 2:
            cols = {f"p_{name}_{c}": pred[:, k] for k, c in enumerate(classes)}
            return {**cols, f"predicted_{name}": np.asarray(classes)[pred.argmax(1)]}
        return {f"predicted_{name}": pred * self.target_scale[j] + self.target_mean[j]}


def is_targets_model(folder: str | Path) -> bool:
    return (Path(folder) / FILE).is_file()


def save_target_models(comp, folder: Path) -> list[Path]:
    """Each family's first-split model(s) under ``folder/FAMILY``, with its preprocessing."""
    from netscope.multitask.families import family
    from netscope.multitask.several.fit_split import how
    from netscope.multitask.several.prepare import prepare_targets

    prep = prepare_targets(comp.data, comp.splits[0])
    out = []
    for key, runs in comp.runs.items():
        fam = family(key)
        together = how(fam) != "alone"
        spec = TargetsPreprocessing.of(comp.data, prep, key, together, fam.native_missing)
        where = Path(folder) / key
        models = runs[0].models
        if together:
            models[0].save(where)
        else:
            for name, model in zip(comp.data.target_names, models, strict=True):
                model.save(where / _safe(name))
        out.append(spec.write(where))
    return out


def _safe(name: str) -> str:
    """A target's folder name: its name with path separators and dots replaced."""
    return "".join(ch if ch.isalnum() or ch in "-_ " else "_" for ch in name) or "target"


def predict_targets_table(folder: str | Path, df: pd.DataFrame, where: str = "table"
                          ) -> tuple[pd.DataFrame, list[str]]:
    """The rows of ``df`` with every target's prediction columns added, and notes."""
    from netscope.multitask.base import load_model

    folder = Path(folder)
    spec = TargetsPreprocessing.read(folder)
    X, notes = encode_rows(spec, df, where)
    out = df.copy()
    one = load_model(folder) if spec.together else None
    for j, name in enumerate(spec.targets):
        if one is not None:
            pred = one.predict(X, np.full(len(X), j))
        else:
            pred = load_model(folder / _safe(name)).predict(X, np.zeros(len(X), np.int64))
        for col, values in spec.outputs(j, pred).items():
            out[col] = values
    return out, notes
