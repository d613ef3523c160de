"""One row split of several-target data: every family fit on its training rows and scored
on its test rows, target by target.

Three ways a family meets several targets:
- without shared parameters it is the independent baseline: fit on each target alone (the
  target's kind picks its form: ridge or logistic, trees, an MLP);
- the expert networks (shared-bottom, MMoE, PLE, cross-stitch) learn every target at once,
  each with its own loss, mini-batches of whole rows, a target missing on a row masked;
- the course's shared trunk and the task-gated network treat each target as a task on the
  same rows; they take one loss, so they run where every target has the same kind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from netscope.data.targets_table import TargetsData
from netscope.multitask.base import Progress
from netscope.multitask.comparison.metrics import primary, score
from netscope.multitask.families import Family
from netscope.multitask.families import family as family_of
from netscope.multitask.several.prepare import PreparedTargets, RowSplit, prepare_targets
from netscope.multitask.targets import KINDS

LOSS_OF = {"regression": "squared_error", "binary": "log_loss", "count": "poisson",
           "multiclass": "multinomial"}


def how(fam: Family) -> str:
    """'joint' (the expert networks), 'tasks' (shared trunk, task-gated: one kind) or
    'alone' (fit on each target alone)."""
    if fam.estimator.endswith(":JointNetwork"):
        return "joint"
    return "tasks" if fam.balances else "alone"


@dataclass
class TargetsRun:
    """One family on one split: per target its scores; the family's time; for balanced
    networks the share of conflicting steps; first split: the model and its gates."""

    scores: list[dict]
    seconds: float
    conflict: float | None = None
    models: list | None = None  # first split: one model (joint) or one per target
    gates: np.ndarray | None = None  # (targets, experts): mean gate weights on test rows
    y_true: list | None = None
    y_pred: list | None = None


def fit_targets_split(data: TargetsData, split: RowSplit, settings, keys: list[str],
                      progress: Progress | None = None, keep: bool = False
                      ) -> list[TargetsRun]:
    prep = prepare_targets(data, split)
    runs = []
    for i, key in enumerate(keys):
        fam = family_of(key)
        if progress:
            progress(f"[{split.name}] {fam.label}: training ({i + 1}/{len(keys)})")
        start = time.perf_counter()
        mode = how(fam)
        if mode == "alone":
            models, preds = _alone(fam, data, prep, settings, progress)
        else:
            model = _together(fam, mode, data, prep, settings, progress)
            models, preds = [model], _predict_each(model, data, prep)
        seconds = time.perf_counter() - start
        scores, truth, means = _scores(data, prep, preds)
        record = getattr(models[0], "balance_", None)
        run = TargetsRun(scores, seconds,
                         record["conflict_share"] if record and record["balancing"] != "sum"
                         else None)
        if keep:
            run.models, run.y_true, run.y_pred = models, truth, means
            run.gates = _gates(models[0], data, prep) if mode == "joint" else None
        runs.append(run)
        if progress:
            shown = ", ".join(f"{n} {primary(KINDS[k]).key} {s[primary(KINDS[k]).key]:.4g}"
                              for n, k, s in zip(data.target_names, data.kinds, scores,
                                                 strict=True))
            progress(f"[{split.name}] {fam.label}: {shown}, {seconds:.1f}s")
    return runs


def _alone(fam: Family, data, prep: PreparedTargets, settings, progress):
    """The family fit on each target's training rows alone; predictions on its test rows."""
    X_train, X_test = prep.features(fam.native_missing)
    models, preds = [], []
    for j, kind in enumerate(data.kinds):
        tr = ~np.isnan(prep.Y_train[:, j])
        te = ~np.isnan(prep.Y_test[:, j])
        est = fam.for_kind(kind).build(settings, progress)
        if data.classes[j]:
            est.classes_ = tuple(data.classes[j])
        est.fit(X_train[tr], prep.Y_train[tr, j], np.zeros(int(tr.sum()), np.int64))
        models.append(est)
        preds.append(est.predict(X_test[te], np.zeros(int(te.sum()), np.int64)))
    return models, preds


def _together(fam: Family, mode: str, data, prep: PreparedTargets, settings, progress):
    """One model of every target: each (row, target) present is an observation."""
    X_train, _ = prep.features(fam.native_missing)
    X, t, y, rows = prep.long(X_train, prep.Y_train)
    if mode == "joint":
        est = fam.build(settings, progress)
        est.set_params(task_losses=tuple(LOSS_OF[k] for k in data.kinds))
        return est.fit(X, y, t, rows=rows)
    est = fam.for_kind(data.kinds[0]).build(settings, progress)
    return est.fit(X, y, t)


def _predict_each(model, data, prep: PreparedTargets) -> list[np.ndarray]:
    _, X_test = prep.features(False)
    out = []
    for j in range(data.n_targets):
        te = ~np.isnan(prep.Y_test[:, j])
        out.append(model.predict(X_test[te], np.full(int(te.sum()), j)))
    return out


def _scores(data, prep: PreparedTargets, preds):
    """Per target: every metric of its kind on its test rows, in its original units."""
    scores, truth, means = [], [], []
    for j, kind in enumerate(data.kinds):
        te = ~np.isnan(prep.Y_test[:, j])
        y = prep.Y_test[te, j]
        mu = preds[j] * prep.scale[j] + prep.mean[j] if kind == "regression" else preds[j]
        s = score(KINDS[kind], y, mu, np.zeros(len(y), np.int64), 1,
                  float(prep.scale[j]) if kind == "regression" else 1.0)
        scores.append(s.values)
        truth.append(y)
        means.append(mu)
    return scores, truth, means


def _gates(model, data, prep: PreparedTargets) -> np.ndarray | None:
    """MMoE and PLE: each target's mean gate weights over its test rows."""
    if not hasattr(model, "gate_weights"):
        return None
    _, X_test = prep.features(False)
    rows = []
    for j in range(data.n_targets):
        te = ~np.isnan(prep.Y_test[:, j])
        g = model.gate_weights(X_test[te], np.full(int(te.sum()), j))
        if g is None:
            return None
        rows.append(g.mean(0))
    return np.array(rows)
