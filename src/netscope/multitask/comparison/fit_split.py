"""One split: every requested family fit on its training rows and scored on its test rows
(the unit of work a worker process runs)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from netscope.data.tasks import Split, TaskData
from netscope.multitask.base import Progress, TaskEstimator
from netscope.multitask.comparison.metrics import score
from netscope.multitask.families import FAMILIES
from netscope.multitask.protocols import prepare


@dataclass
class SplitRun:
    """One family on one split: its scores, and (first split only) predictions and model."""

    scores: dict
    per_task_mse: np.ndarray
    y_true: np.ndarray | None = None
    y_pred: np.ndarray | None = None
    model: TaskEstimator | None = None


def fit_split(data: TaskData, split: Split, scale_from: str, settings,
              keys: Sequence[str], progress: Progress | None = None,
              keep: bool = False) -> list[SplitRun]:
    """Every family in ``keys`` on one split. Families that build on others reuse them when
    they ran before in the same split (the shared trunk starts from the pooled MLP, the
    ensemble averages the fitted members), and count their time."""
    prep = prepare(data, split, scale_from)
    y_true = data.y[split.test]
    done: dict[str, tuple[TaskEstimator, float]] = {}
    runs = []
    for key in keys:
        family = FAMILIES[key]
        if progress:
            progress(f"[{split.name}] {family.label}: training")
        est, seconds = _fit_family(key, prep, settings, progress, done)
        done[key] = (est, seconds)
        y_pred = prep.target.inverse_target(est.predict(prep.X_test, prep.t_test))
        s = score(y_true, y_pred, prep.t_test, data.n_tasks, prep.reference_scale)
        run = SplitRun({"split": split.name, "mse_std": s.mse_std, "mse": s.mse, "rmse": s.rmse,
                        "explained_variance": s.explained_variance, "train_seconds": seconds},
                       s.per_task_mse)
        if keep:
            run.y_true, run.y_pred, run.model = y_true, y_pred, est
        runs.append(run)
        if progress:
            progress(f"[{split.name}] {family.label}: test MSE {s.mse_std:.4f} "
                     f"(standardized), {seconds:.1f}s")
    return runs


def _fit_family(key: str, prep, settings, progress: Progress | None,
                done: dict[str, tuple[TaskEstimator, float]]) -> tuple[TaskEstimator, float]:
    """Fit one family; the families it reuses (``Family.reuses``) are fit first when they
    have not run in this split, and their seconds count toward its time."""
    family = FAMILIES[key]
    for other in family.reuses:
        if other not in done:
            done[other] = _fit_family(other, prep, settings, progress, done)
    est = family.build(settings, progress)
    start = time.perf_counter()
    est.fit(prep.X_train, prep.y_train, prep.t_train,
            fitted={k: done[k][0] for k in family.reuses})
    extra = sum(done[k][1] for k in family.reuses)
    return est, time.perf_counter() - start + extra
