"""One split: every requested family fit on its training rows and scored on its test rows
(the unit of work a worker process runs)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from netscope.data.tasks import Split, TaskData
from netscope.multitask.base import Progress, TaskEstimator
from netscope.multitask.comparison.metrics import primary, score
from netscope.multitask.families import family as family_of
from netscope.multitask.protocols import prepare
from netscope.multitask.targets import KINDS
from netscope.timing import time_left


@dataclass
class SplitRun:
    """One family on one split: its scores, each task's mean loss, and (first split only)
    the test rows' truth, predicted means, tasks and the model."""

    scores: dict
    per_task: np.ndarray
    task_metrics: dict | None = None  # metric key -> (T,) on each task's test rows
    y_true: np.ndarray | None = None
    y_pred: np.ndarray | None = None
    model: TaskEstimator | None = None
    new_task: np.ndarray | None = None  # test rows of tasks without training rows


def fit_split(data: TaskData, split: Split, scale_from: str, settings,
              keys: Sequence[str], progress: Progress | None = None,
              keep: bool = False) -> list[SplitRun]:
    """Every family in ``keys`` on one split. Families that build on others reuse them when
    they ran before in the same split (the shared trunk starts from the pooled MLP, the
    ensemble averages the fitted members), and count their time. Test rows of tasks with no
    training rows (the new-tasks protocol) get each model's population-level prediction and
    are scored apart as well."""
    kind = KINDS[data.kind]
    prep = prepare(data, split, scale_from)
    y_true = data.y[split.test]
    new = ~np.isin(prep.t_test, prep.t_train)
    done: dict[str, tuple[TaskEstimator, float]] = {}
    runs, start = [], time.perf_counter()
    for i, key in enumerate(keys):
        family = family_of(key).for_kind(data.kind)
        if progress:  # the pace so far (families differ in cost: a rough guide)
            pace = time_left(time.perf_counter() - start, i, len(keys))
            progress(f"[{split.name}] {family.label}: training ({i + 1}/{len(keys)}{pace})")
        est, seconds = _fit_family(key, prep, settings, data, progress, done)
        done[key] = (est, seconds)
        X_test = prep.features_for(family.native_missing)[1]
        mu = prep.target.inverse_target(est.predict(X_test, prep.t_test))
        s = score(kind, y_true, mu, prep.t_test, data.n_tasks, prep.reference_scale)
        values = {"split": split.name, **s.values, "train_seconds": seconds}
        record = getattr(est, "balance_", None)
        if record and record["balancing"] != "sum":  # how often the tasks' gradients clashed
            values["conflict_share"] = record["conflict_share"]
        if new.any():
            values.update(_apart(kind, y_true, mu, new, prep.reference_scale))
        run = SplitRun(values, s.per_task, s.task_metrics)
        if keep:
            run.y_true, run.y_pred, run.model, run.new_task = y_true, mu, est, new
        runs.append(run)
        if progress:
            m = primary(kind)
            name = m.header if m.header.startswith("test") else f"test {m.header}"
            progress(f"[{split.name}] {family.label}: {name} {s.values[m.key]:.4f}, "
                     f"{seconds:.1f}s")
    return runs


def _apart(kind, y, mu, new, scale) -> dict[str, float]:
    """The primary metric on the rows of tasks seen in training and on new tasks."""
    m = primary(kind)
    out = {f"new_{m.key}": m.fn(y[new], mu[new], scale)}
    if (~new).any():
        out[f"seen_{m.key}"] = m.fn(y[~new], mu[~new], scale)
    return out


def _fit_family(key: str, prep, settings, data: TaskData, progress: Progress | None,
                done: dict[str, tuple[TaskEstimator, float]]) -> tuple[TaskEstimator, float]:
    """Fit one family; the families it reuses (``Family.reuses``) are fit first when they
    have not run in this split, and their seconds count toward its time."""
    family = family_of(key).for_kind(data.kind)
    for other in family.reuses:
        if other not in done:
            done[other] = _fit_family(other, prep, settings, data, progress, done)
    est = family.build(settings, progress)
    if data.classes:  # what the fit's messages and saved models call the classes
        est.classes_ = tuple(data.classes)
    start = time.perf_counter()
    est.fit(prep.features_for(family.native_missing)[0], prep.y_train, prep.t_train,
            fitted={k: done[k][0] for k in family.reuses})
    extra = sum(done[k][1] for k in family.reuses)
    return est, time.perf_counter() - start + extra
