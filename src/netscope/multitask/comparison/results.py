"""Train every model family on the same splits and collect comparable scores.

This is the library side of `netscope multitask run`: it returns numbers and predictions;
``render/comparison.py`` writes and draws them. The families are in ``families.py``, one
split's work in ``fit_split.py``, splits side by side in ``parallel.py``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.stats import ttest_rel

from netscope.data.tasks import TaskData
from netscope.errors import NetscopeError
from netscope.multitask.base import Progress, TaskEstimator
from netscope.multitask.comparison.fit_split import fit_split
from netscope.multitask.comparison.metrics import Metric, primary
from netscope.multitask.families import (
    FAMILIES,
    Family,
    check_families,
    families_for,
    family,
    with_balancing,
)
from netscope.multitask.protocols import Protocol
from netscope.multitask.settings import Settings
from netscope.multitask.targets import KINDS, TargetKind
from netscope.timing import time_left

DIVERGED = 10.0  # a standardized test MSE above this is reported as a failed fit


@dataclass
class FamilyResult:
    family: Family
    runs: list[dict] = field(default_factory=list)  # one dict of metrics per split
    per_task: list[np.ndarray] = field(default_factory=list)  # each task's mean loss
    task_metrics: list[dict] = field(default_factory=list)  # per split: key -> (T,)
    y_true: np.ndarray | None = None  # first split, original scale
    y_pred: np.ndarray | None = None  # predicted means (probabilities for yes/no)
    model: TaskEstimator | None = None  # fitted on the first split
    new_task: np.ndarray | None = None  # first split's test rows of tasks unseen in training

    def summary(self) -> dict:
        out: dict = {"family": self.family.key, "model": self.family.label,
                     "balancing": self.family.balancing if self.family.balances else "",
                     "splits": len(self.runs)}
        for k in [k for k in self.runs[0] if k != "split"]:
            vals = np.array([r[k] for r in self.runs], dtype=np.float64)
            out[k] = float(vals.mean())
            out[f"{k}_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        return out


@dataclass
class Comparison:
    data: TaskData
    protocol: Protocol
    settings: Settings
    results: list[FamilyResult]
    skipped: list[str] = field(default_factory=list)  # families that do not take the kind
    prepared_notes: list[str] = field(default_factory=list)  # what the first split imputed

    @property
    def kind(self) -> TargetKind:
        return KINDS[self.data.kind]

    @property
    def metric(self) -> Metric:
        """The metric that ranks the models (lower is better)."""
        return primary(self.kind)

    def summary(self) -> list[dict]:
        return [r.summary() for r in self.results]

    def best(self) -> dict:
        return min(self.summary(), key=lambda row: row[self.metric.key])

    def answer(self) -> dict:
        """Which family to use and by how much it beats the runner-up, paired over splits:
        the per-split differences of the ranking metric (runner-up minus best: original-scale
        test MSE, log loss or Poisson deviance), their mean and SD, how many splits the best
        wins, and a paired t-test where there are at least two splits. ``clear`` says
        whether the mean difference exceeds its SD."""
        key = self.metric.key
        ranked = sorted(self.results, key=lambda r: float(np.mean([x[key] for x in r.runs])))
        best = ranked[0]
        out: dict = {"best": best.family.label, "best_key": best.family.key, "metric": key,
                     "best_value": float(np.mean([x[key] for x in best.runs])),
                     "splits": len(best.runs)}
        if len(ranked) < 2:
            return out
        second = ranked[1]
        diff = np.array([b[key] - a[key] for a, b in zip(best.runs, second.runs, strict=True)])
        out.update(runner_up=second.family.label, runner_up_key=second.family.key,
                   runner_up_value=float(np.mean([x[key] for x in second.runs])),
                   difference=float(diff.mean()), wins=int((diff > 0).sum()))
        if diff.size > 1:
            sd = float(diff.std(ddof=1))
            t, p = ttest_rel([b[key] for b in second.runs], [a[key] for a in best.runs]) \
                if sd > 0 else (float("inf"), 0.0)
            out.update(difference_sd=sd, t=float(t), p=float(p),
                       clear=bool(diff.mean() > sd))
        return out

    def _repr_html_(self) -> str:
        """Jupyter shows a comparison as its full report (table, answer, plots), styled
        only inside its own output."""
        from netscope.render.comparison import notebook_html, report_pictures

        return notebook_html(self, report_pictures(self))

    def __repr__(self) -> str:
        from netscope.render.comparison import short_text

        return short_text(self)

    def warnings(self) -> list[str]:
        """Families whose test error is far above the target's own variance: predicting the
        mean would do much better, so training diverged or the settings are wrong."""
        found = [f"{row['model']}: test MSE is {row['mse_std']:.3g} times the target's "
                 f"variance (explained variance {row['explained_variance']:.3g}); training "
                 f"probably diverged: lower --lr or the number of epochs, or add "
                 f"--weight-decay."
                 for row in self.summary() if "mse_std" in row and
                 not row["mse_std"] <= DIVERGED]
        found += [f"{key}: left out, it does not take {self.kind.name} targets yet"
                  for key in self.skipped]
        if self.data.n_tasks < 3:
            found.append(f"{self.data.n_tasks} task(s) only: the task maps are left out (they "
                         f"place tasks relative to each other and need at least 3).")
        return found


def compare(data: TaskData, protocol: Protocol, settings: Settings | None = None,
            families: Sequence[str] | None = None, progress: Progress | None = None,
            jobs: int = 1, scheduler: str | None = None,
            balancing: Sequence[str] = ("sum",)) -> Comparison:
    """Fit every requested family on every split of ``protocol``; score on original scale.
    Without ``families``, every family that takes the data's kind of target (the others are
    listed in the warnings). ``jobs`` > 1 fits splits (and independent groups of families)
    in that many worker processes (one thread each), ``scheduler`` (a Dask scheduler's
    address) on that cluster's workers; the numbers are those of ``jobs=1`` up to
    floating-point summation order. ``balancing``: the strategies each family with shared
    parameters is trained with, each its own row (``mmoe+upgrad``)."""
    settings = settings or Settings.for_dataset(data.reference)
    if settings.training == "auto":  # the course's fixed training: its data, its protocol
        course = protocol.name == "lecture" and data.reference is not None
        settings = replace(settings, training="fixed" if course else "tuned")
    skipped: list[str] = []
    if families is None:
        keys = families_for(data.kind)
        skipped = [k for k, f in FAMILIES.items() if f.default and k not in keys]
        if not keys:
            raise NetscopeError(f"no model family takes {data.kind} targets yet.")
    else:
        keys = check_families(families, data.kind)
    keys = with_balancing(keys, balancing)
    results = [FamilyResult(family(k).for_kind(data.kind)) for k in keys]
    splits = protocol.splits
    if scheduler or (jobs > 1 and (len(splits) > 1 or len(keys) > 1)):
        from netscope.multitask.comparison.parallel import fit_splits_in_processes

        for split in splits:  # a bad split fails here, before workers start
            split.check(data)
        outcomes = fit_splits_in_processes(data, protocol, settings, keys, jobs, progress,
                                           scheduler)
    else:
        outcomes = (fit_split(data, split, protocol.scale_from, settings, keys, progress, i == 0)
                    for i, split in enumerate(splits))
    start = time.perf_counter()
    for i, outcome in enumerate(outcomes):
        if progress and len(splits) > 1 and i + 1 < len(splits):  # the pace so far
            progress(f"{i + 1}/{len(splits)} splits done"
                     f"{time_left(time.perf_counter() - start, i + 1, len(splits))}")
        for res, run in zip(results, outcome, strict=True):
            res.runs.append(run.scores)
            res.per_task.append(run.per_task)
            if run.task_metrics is not None:
                res.task_metrics.append(run.task_metrics)
            if i == 0:
                res.y_true, res.y_pred, res.model = run.y_true, run.y_pred, run.model
                res.new_task = run.new_task
    return Comparison(data, protocol, settings, results, skipped,
                      missing_notes(data, splits[0]))


def missing_notes(data: TaskData, split) -> list[str]:
    """What the first split's preparation imputes, one line per column with gaps."""
    if not np.isnan(data.X).any():
        return []
    from netscope.multitask.protocols.missing import Imputer

    return Imputer.fit(data.X[split.train]).notes(data.X, data.feature_names)
