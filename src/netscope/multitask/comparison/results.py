"""Train every model family on the same splits and collect comparable scores.

This is the library side of `netscope multitask run`: it returns numbers and predictions;
``render/comparison.py`` writes and draws them. The families are in ``families.py``, one
split's work in ``fit_split.py``, splits side by side in ``parallel.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import ttest_rel

from netscope.data.tasks import TaskData
from netscope.multitask.base import Progress, TaskEstimator
from netscope.multitask.comparison.fit_split import fit_split
from netscope.multitask.families import FAMILIES, Family, check_families
from netscope.multitask.protocols import Protocol
from netscope.multitask.settings import Settings

DIVERGED = 10.0  # a standardized test MSE above this is reported as a failed fit


@dataclass
class FamilyResult:
    family: Family
    runs: list[dict] = field(default_factory=list)  # one dict of metrics per split
    per_task_mse: list[np.ndarray] = field(default_factory=list)
    y_true: np.ndarray | None = None  # first split, original scale
    y_pred: np.ndarray | None = None
    model: TaskEstimator | None = None  # fitted on the first split

    def summary(self) -> dict:
        keys = ("mse_std", "mse", "rmse", "explained_variance", "train_seconds")
        out: dict = {"family": self.family.key, "model": self.family.label,
                     "splits": len(self.runs)}
        for k in keys:
            vals = np.array([r[k] for r in self.runs])
            out[k] = float(vals.mean())
            out[f"{k}_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        return out


@dataclass
class Comparison:
    data: TaskData
    protocol: Protocol
    settings: Settings
    results: list[FamilyResult]

    def summary(self) -> list[dict]:
        return [r.summary() for r in self.results]

    def best(self) -> dict:
        return min(self.summary(), key=lambda row: row["mse"])

    def answer(self) -> dict:
        """Which family to use and by how much it beats the runner-up, paired over splits:
        the per-split differences of original-scale test MSE (runner-up minus best), their
        mean and SD, how many splits the best wins, and a paired t-test where there are at
        least two splits. ``clear`` says whether the mean difference exceeds its SD."""
        ranked = sorted(self.results, key=lambda r: float(np.mean([x["mse"] for x in r.runs])))
        best = ranked[0]
        out: dict = {"best": best.family.label, "best_key": best.family.key,
                     "best_mse": float(np.mean([x["mse"] for x in best.runs])),
                     "splits": len(best.runs)}
        if len(ranked) < 2:
            return out
        second = ranked[1]
        diff = np.array([b["mse"] - a["mse"] for a, b in zip(best.runs, second.runs,
                                                              strict=True)])
        out.update(runner_up=second.family.label, runner_up_key=second.family.key,
                   runner_up_mse=float(np.mean([x["mse"] for x in second.runs])),
                   difference=float(diff.mean()), wins=int((diff > 0).sum()))
        if diff.size > 1:
            sd = float(diff.std(ddof=1))
            t, p = ttest_rel([b["mse"] for b in second.runs], [a["mse"] for a in best.runs]) \
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
                 for row in self.summary() if not row["mse_std"] <= DIVERGED]
        if self.data.n_tasks < 3:
            found.append(f"{self.data.n_tasks} task(s) only: the task maps are left out (they "
                         f"place tasks relative to each other and need at least 3).")
        return found


def compare(data: TaskData, protocol: Protocol, settings: Settings | None = None,
            families: Sequence[str] | None = None, progress: Progress | None = None,
            jobs: int = 1) -> Comparison:
    """Fit every requested family on every split of ``protocol``; score on original scale.
    ``jobs`` > 1 fits splits in that many worker processes (one thread each); the numbers
    are those of ``jobs=1`` up to floating-point summation order."""
    settings = settings or Settings.for_dataset(data.reference)
    keys = check_families(families or list(FAMILIES))
    results = [FamilyResult(FAMILIES[k]) for k in keys]
    splits = protocol.splits
    if jobs > 1 and len(splits) > 1:
        from netscope.multitask.comparison.parallel import fit_splits_in_processes

        for split in splits:  # a bad split fails here, before workers start
            split.check(data)
        outcomes = fit_splits_in_processes(data, protocol, settings, keys, jobs, progress)
    else:
        outcomes = (fit_split(data, split, protocol.scale_from, settings, keys, progress, i == 0)
                    for i, split in enumerate(splits))
    for i, outcome in enumerate(outcomes):
        for res, run in zip(results, outcome, strict=True):
            res.runs.append(run.scores)
            res.per_task_mse.append(run.per_task_mse)
            if i == 0:
                res.y_true, res.y_pred, res.model = run.y_true, run.y_pred, run.model
    return Comparison(data, protocol, settings, results)


