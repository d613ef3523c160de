"""Metrics by target kind, one table: each with its column header, its direction and the
definition printed beside every number (papers disagree on these). The comparison, its
table, the answer and the report all read it; a new metric is one entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from netscope.multitask.targets import EPS, TargetKind


@dataclass(frozen=True)
class Metric:
    key: str
    header: str
    fmt: str  # format of a value in the table ("%" for percentages)
    lower_is_better: bool
    definition: str
    fn: Callable[[np.ndarray, np.ndarray, float], float]  # (y, predicted mean, target SD)


def _mse(y, mu, _):
    return float(np.mean((mu - y) ** 2))


def _ev(y, mu, _):
    var = float(np.var(y))
    return 1.0 - _mse(y, mu, _) / var if var > 0 else float("nan")


def _log_loss(y, mu, _):
    p = np.clip(mu, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def _auc(y, mu, _):
    """Area under the ROC curve (ties count half), NaN when one class is absent."""
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(mu)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _onehot(y, k: int) -> np.ndarray:
    return np.eye(k)[np.asarray(y, np.int64)]


def _multi_log_loss(y, P, _):
    from netscope.multitask.targets import KINDS

    return float(np.mean(KINDS["multiclass"].unit_loss(y, P)))


def _macro_auc(y, P, _):
    """Mean over classes of the AUC of class k against the rest (scikit-learn's
    ``roc_auc_score(multi_class="ovr", average="macro")``); classes absent from ``y`` or
    present in every row are left out, NaN when none is left."""
    values = [_auc((y == k).astype(float), P[:, k], _) for k in range(P.shape[1])]
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def _poisson(y, mu, _):
    from netscope.multitask.targets import KINDS

    return float(np.mean(KINDS["count"].unit_loss(y, mu)))


TIME = Metric("train_seconds", "train time (s)", ".2f", True,
              "wall-clock seconds to fit (this machine; noisy)", lambda y, mu, s: 0.0)

METRICS: dict[str, tuple[Metric, ...]] = {
    "regression": (
        Metric("mse_std", "test MSE (standardized)", ".4f", True,
               "test MSE on the standardized target scale (original MSE / SD^2 of the "
               "protocol's target scaler)", lambda y, mu, sd: _mse(y, mu, sd) / sd**2),
        Metric("mse", "test MSE (original scale)", ".3f", True,
               "test MSE in the target's original units", _mse),
        Metric("rmse", "test RMSE", ".3f", True, "square root of the original-scale test MSE",
               lambda y, mu, sd: float(np.sqrt(_mse(y, mu, sd)))),
        Metric("explained_variance", "explained variance", "%", False,
               "1 - MSE / Var(y_test), pooled over all test rows of the split", _ev),
    ),
    "binary": (
        Metric("log_loss", "log loss", ".4f", True,
               "mean of -[y log p + (1-y) log(1-p)] over test rows (p clipped to 1e-15)",
               _log_loss),
        Metric("auc", "AUC", ".4f", False, "area under the ROC curve of p, pooled over test "
               "rows (ties count half)", _auc),
        Metric("accuracy", "accuracy", "%", False, "share of test rows where p > 0.5 "
               "predicts the class", lambda y, mu, _: float(np.mean((mu > 0.5) == (y == 1)))),
        Metric("brier", "Brier score", ".4f", True, "mean of (p - y)^2 over test rows", _mse),
    ),
    "multiclass": (
        Metric("log_loss", "log loss", ".4f", True,
               "mean of -log p(true class) over test rows (p clipped to 1e-15)",
               _multi_log_loss),
        Metric("auc", "AUC (macro, one-vs-rest)", ".4f", False,
               "mean over classes of the AUC of each class against the rest, pooled over "
               "test rows (classes absent from the test rows left out)", _macro_auc),
        Metric("accuracy", "accuracy", "%", False, "share of test rows whose most probable "
               "class is the true one",
               lambda y, P, _: float(np.mean(P.argmax(1) == np.asarray(y, np.int64)))),
        Metric("brier", "Brier score", ".4f", True, "mean over test rows of the sum over "
               "classes of (p_k - [y = k])^2 (0 to 2)",
               lambda y, P, _: float(np.mean(((P - _onehot(y, P.shape[1])) ** 2).sum(1)))),
    ),
    "count": (
        Metric("poisson_deviance", "Poisson deviance", ".4f", True,
               "mean of 2 [y log(y / mu) - (y - mu)] over test rows", _poisson),
        Metric("mae", "MAE", ".3f", True, "mean absolute error |y - mu| in counts",
               lambda y, mu, _: float(np.mean(np.abs(y - mu)))),
        Metric("mse", "MSE", ".3f", True, "mean squared error in counts^2", _mse),
    ),
}


def metrics_of(kind: TargetKind) -> tuple[Metric, ...]:
    """The kind's metrics, then the training time."""
    return (*METRICS[kind.name], TIME)


def primary(kind: TargetKind) -> Metric:
    return next(m for m in METRICS[kind.name] if m.key == kind.primary)


def definitions(kind: TargetKind) -> dict[str, str]:
    return {m.key: m.definition for m in metrics_of(kind)}


@dataclass(frozen=True)
class Scores:
    values: dict[str, float]  # metric key -> value on the split's test rows
    per_task: np.ndarray  # (T,) the primary metric's per-row loss averaged per task (NaN: none)
    task_metrics: dict[str, np.ndarray] | None = None  # metric key -> (T,) on each task's
    # test rows (NaN where a task has none, or where the metric is undefined there)


def score(kind: TargetKind, y_true: np.ndarray, mu: np.ndarray, task: np.ndarray,
          n_tasks: int, reference_scale: float = 1.0) -> Scores:
    """Every metric of ``kind`` for one split's test rows (original scale), and each task's
    mean loss (squared error, log loss or Poisson deviance)."""
    y, mu = np.asarray(y_true, float), np.asarray(mu, float)
    values = {m.key: m.fn(y, mu, reference_scale) for m in METRICS[kind.name]}
    loss = kind.unit_loss(y, mu)
    counts = np.bincount(task, minlength=n_tasks)
    per_task = np.bincount(task, weights=loss, minlength=n_tasks) / np.maximum(counts, 1)
    return Scores(values, np.where(counts > 0, per_task, np.nan),
                  task_metrics(kind, y, mu, task, n_tasks, reference_scale))


def task_metrics(kind: TargetKind, y: np.ndarray, mu: np.ndarray, task: np.ndarray,
                 n_tasks: int, reference_scale: float = 1.0) -> dict[str, np.ndarray]:
    """Every metric of ``kind`` on each task's test rows (NaN where the task has none, or
    where the metric is undefined there: AUC of a task whose test rows hold one class,
    explained variance of a task with one test row)."""
    out = {m.key: np.full(n_tasks, np.nan) for m in METRICS[kind.name]}
    order = np.argsort(task, kind="stable")
    bounds = np.searchsorted(task[order], np.arange(n_tasks + 1))
    with np.errstate(all="ignore"):
        for t in np.flatnonzero(bounds[1:] > bounds[:-1]):
            rows = order[bounds[t]:bounds[t + 1]]
            for m in METRICS[kind.name]:
                out[m.key][t] = m.fn(y[rows], mu[rows], reference_scale)
    return out


def bland_altman(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, np.ndarray | float]:
    """Mean of and difference between prediction and truth; bias and 1.96-SD limits."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    diff = y_pred - y_true
    bias, sd = float(diff.mean()), float(diff.std(ddof=1)) if diff.size > 1 else 0.0
    return {"mean": (y_pred + y_true) / 2, "diff": diff, "bias": bias,
            "lower": bias - 1.96 * sd, "upper": bias + 1.96 * sd}


def roc_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every threshold, from (0,0) to (1,1)."""
    order = np.argsort(-p, kind="stable")
    ys, ps = y[order], p[order]
    distinct = np.r_[np.flatnonzero(np.diff(ps)), ys.size - 1]
    tp = np.cumsum(ys)[distinct]
    fp = (distinct + 1) - tp
    pos, neg = max(ys.sum(), 1), max(ys.size - ys.sum(), 1)
    return np.r_[0.0, fp / neg], np.r_[0.0, tp / pos]


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, np.ndarray]:
    """Mean predicted probability and observed share of 1s in equal-width bins of p (bins
    with no rows left out), with each bin's row count."""
    which = np.minimum((p * bins).astype(int), bins - 1)
    n = np.bincount(which, minlength=bins)
    keep = n > 0
    return {"predicted": (np.bincount(which, weights=p, minlength=bins)[keep] / n[keep]),
            "observed": (np.bincount(which, weights=y, minlength=bins)[keep] / n[keep]),
            "rows": n[keep]}
