"""One split: every requested family fit on its training rows and scored on its test rows
(the unit of work a worker process runs)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from netscope.data.tasks import Split, TaskData
from netscope.multitask.base import Progress, TaskEstimator
from netscope.multitask.ensemble import Ensemble
from netscope.multitask.evaluate import score
from netscope.multitask.families import FAMILIES, Settings
from netscope.multitask.pooled import PooledMLP
from netscope.multitask.protocols import prepare
from netscope.multitask.shared_trunk import SharedTrunkMTL


@dataclass
class SplitRun:
    """One family on one split: its scores, and (first split only) predictions and model."""

    scores: dict
    per_task_mse: np.ndarray
    y_true: np.ndarray | None = None
    y_pred: np.ndarray | None = None
    model: TaskEstimator | None = None


def fit_split(data: TaskData, split: Split, scale_from: str, settings: Settings,
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


def _fit_family(key: str, prep, settings: Settings, progress: Progress | None,
                done: dict[str, tuple[TaskEstimator, float]]) -> tuple[TaskEstimator, float]:
    est = FAMILIES[key].build(settings, progress)
    start = time.perf_counter()
    if isinstance(est, SharedTrunkMTL):
        if "pooled-mlp" not in done:
            done["pooled-mlp"] = _fit_pooled(prep, settings, progress)
        pooled, extra = done["pooled-mlp"]
        est.fit(prep.X_train, prep.y_train, prep.t_train, pooled=pooled)
    elif isinstance(est, Ensemble):
        given = {k: done[k][0] for k in est.members if k in done}
        extra = sum(done[k][1] for k in given)
        est.fit(prep.X_train, prep.y_train, prep.t_train, fitted=given)
    else:
        extra = 0.0
        est.fit(prep.X_train, prep.y_train, prep.t_train)
    return est, time.perf_counter() - start + extra


def _fit_pooled(prep, settings: Settings, progress: Progress | None) -> tuple[PooledMLP, float]:
    start = time.perf_counter()
    model = FAMILIES["pooled-mlp"].build(settings, progress)
    model.fit(prep.X_train, prep.y_train, prep.t_train)
    return model, time.perf_counter() - start
