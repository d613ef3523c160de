"""Train every model family on the same splits and collect comparable scores.

This is the library side of `netscope multitask run`: it returns numbers and predictions;
``results.py`` writes them and ``render/`` draws them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.stats import ttest_rel

from netscope.errors import NetscopeError
from netscope.multitask.base import Progress, TaskEstimator
from netscope.multitask.boosted import BoostedTrees
from netscope.multitask.ensemble import Ensemble
from netscope.multitask.evaluate import score
from netscope.multitask.gated import TaskGatedMLP
from netscope.multitask.mixed import COVARIANCES, MixedEffects
from netscope.multitask.pertask import PerTaskMLP
from netscope.multitask.pooled import PooledMLP
from netscope.multitask.protocols import Protocol, prepare
from netscope.multitask.ridge import MeanRegularizedRidge, PooledRidge, RidgePerTask
from netscope.multitask.shared_trunk import SharedTrunkMTL
from netscope.multitask.task_covariance import LearnedTaskCovariance
from netscope.multitask.tasks import Split, TaskData


@dataclass(frozen=True)
class Settings:
    """Hyper-parameters; the defaults are the course's values for the school data."""

    per_task_hidden: tuple[int, ...] = (30, 15)
    per_task_epochs: int = 5
    per_task_optimizer: str = "rmsprop"
    pooled_hidden: tuple[int, int] = (32, 16)
    pooled_epochs: int = 20
    gated_width: int = 32
    gated_hidden: int = 16
    gated_epochs: int = 20
    stage_epochs: tuple[int, int, int] = (10, 10, 10)
    stage_lr: tuple[float, float, float] = (1e-3, 1e-4, 1e-5)
    shared_reduce: str = "sum"
    batch_size: int = 32
    lr: float = 1e-3
    ridge_folds: int = 3
    weight_decay: float = 0.0  # L2 on every neural family's weights (0: the course)
    mixed_cov: str = "factor1"  # the mixed model's random-effects covariance (COVARIANCES)
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse settings that would train nothing or fail deep inside PyTorch."""
        counts = {"per_task_epochs": self.per_task_epochs, "pooled_epochs": self.pooled_epochs,
                  "gated_epochs": self.gated_epochs, "batch_size": self.batch_size,
                  "gated_width": self.gated_width, "gated_hidden": self.gated_hidden,
                  **{f"per_task_hidden[{i}]": h for i, h in enumerate(self.per_task_hidden)},
                  **{f"pooled_hidden[{i}]": h for i, h in enumerate(self.pooled_hidden)}}
        for name, value in counts.items():
            if int(value) != value or value < 1:
                raise NetscopeError(f"settings: {name} must be a whole number >= 1, "
                                    f"got {value!r}.")
        if len(self.stage_epochs) != 3 or min(self.stage_epochs) < 0:
            raise NetscopeError(f"settings: stage_epochs must be three numbers >= 0, "
                                f"got {self.stage_epochs!r}.")
        rates = {"lr": self.lr, **{f"stage_lr[{i}]": r for i, r in enumerate(self.stage_lr)}}
        for name, value in rates.items():
            if not np.isfinite(value) or value <= 0:
                raise NetscopeError(f"settings: {name} must be a number > 0, got {value!r}.")
        if len(self.stage_lr) != 3:
            raise NetscopeError(f"settings: stage_lr needs three values, got {self.stage_lr!r}.")
        if not np.isfinite(self.weight_decay) or self.weight_decay < 0:
            raise NetscopeError(f"settings: weight_decay must be >= 0, got {self.weight_decay!r}.")
        if self.mixed_cov not in COVARIANCES:
            raise NetscopeError(f"settings: mixed_cov must be one of {COVARIANCES}, "
                                f"got {self.mixed_cov!r}.")
        if self.ridge_folds < 2:
            raise NetscopeError(f"settings: ridge_folds must be >= 2, got {self.ridge_folds!r}.")
        if not 0 <= self.seed < 2**32:
            raise NetscopeError(f"settings: seed must be from 0 to 2**32-1, got {self.seed!r}.")

    @classmethod
    def for_dataset(cls, name: str, **overrides) -> Settings:
        """Course defaults; the survey's tasks have 15-16 rows (one mini-batch per epoch),
        so its per-task parts need more epochs and a larger first-stage learning rate, and
        every subject rates the same 16 computers, so the networks need weight decay not to
        memorize them (without it they extrapolate badly to the 4 hold-out profiles)."""
        base = cls()
        if name == "survey":
            base = cls(per_task_epochs=100, pooled_epochs=20, gated_epochs=60,
                       stage_epochs=(40, 20, 20), stage_lr=(1e-2, 1e-3, 1e-4),
                       weight_decay=1e-2)
        fields = asdict(base)
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**fields)


DIVERGED = 10.0  # a standardized test MSE above this is reported as a failed fit


@dataclass(frozen=True)
class Family:
    key: str
    label: str
    description: str
    build: Callable[[Settings, Progress | None], TaskEstimator]


FAMILIES: dict[str, Family] = {f.key: f for f in [
    Family("ridge-per-task", "ridge per task",
           "independent ridge regression per task, penalty by inner CV",
           lambda s, p: RidgePerTask(folds=s.ridge_folds, seed=s.seed, progress=p)),
    Family("pooled-ridge", "pooled ridge", "one ridge regression for all rows",
           lambda s, p: PooledRidge(folds=s.ridge_folds, seed=s.seed, progress=p)),
    Family("mtl-ridge", "mean-regularized MTL ridge",
           "Evgeniou & Pontil (2004): w_t = w_0 + v_t, both penalties by inner CV",
           lambda s, p: MeanRegularizedRidge(folds=s.ridge_folds, seed=s.seed, progress=p)),
    Family("per-task-mlp", "per-task MLP", "one MLP per task, trained as one batched program",
           lambda s, p: PerTaskMLP(s.per_task_hidden, s.per_task_epochs, s.batch_size,
                                   s.per_task_optimizer, s.lr, s.seed, p, s.weight_decay)),
    Family("pooled-mlp", "pooled MLP", "one MLP for all rows, task ignored",
           lambda s, p: PooledMLP(s.pooled_hidden, s.pooled_epochs, s.batch_size, "adam", s.lr,
                                  s.seed, p, s.weight_decay)),
    Family("shared-trunk-accumulate", "shared trunk (accumulate)",
           "pooled MLP's hidden layers shared, a head per task; all tasks' gradients "
           "before each update; staged unfreezing (time includes the pooled start)",
           lambda s, p: SharedTrunkMTL("accumulate", s.stage_epochs, s.stage_lr, s.batch_size,
                                       "adam", s.shared_reduce, s.pooled_epochs, s.seed, p,
                                       s.weight_decay)),
    Family("shared-trunk-random", "shared trunk (random batches)",
           "as above, but per-task mini-batches in random order, each applied at once",
           lambda s, p: SharedTrunkMTL("random", s.stage_epochs, s.stage_lr, s.batch_size,
                                       "adam", s.shared_reduce, s.pooled_epochs, s.seed, p,
                                       s.weight_decay)),
    Family("task-gated", "task-gated network",
           "sigmoid(task embedding) gates a Dense(32) projection; Dense 16; linear output",
           lambda s, p: TaskGatedMLP(s.gated_width, s.gated_hidden, s.gated_epochs,
                                     s.batch_size, "adam", s.lr, s.seed, p, s.weight_decay)),
    Family("mixed-effects", "mixed-effects model",
           "random intercept and slopes per task, learned covariance, REML (lme4's model)",
           lambda s, p: MixedEffects(cov=s.mixed_cov, progress=p)),
    Family("boosted-trees", "boosted trees",
           "gradient-boosted trees, task as a categorical feature; trees, leaves and L2 "
           "chosen on inner validation rows",
           lambda s, p: BoostedTrees(seed=s.seed, threads=1, progress=p)),
    Family("learned-task-covariance", "learned task covariance (MTRL)",
           "Zhang & Yeung (2010): shared weights plus task deviations coupled by a learned "
           "task covariance; penalties by inner CV",
           lambda s, p: LearnedTaskCovariance(folds=s.ridge_folds, seed=s.seed, progress=p)),
    Family("ensemble", "ensemble (MTL ridge + mixed + trees)",
           "weighted average of mean-regularized ridge, mixed-effects and boosted trees; "
           "weights on held-out training rows (time includes the members)",
           lambda s, p: Ensemble(seed=s.seed, progress=p)),
]}


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
        """Jupyter shows a comparison as its full report (table, answer, plots)."""
        from netscope.render.comparison import html_report, report_pictures

        return html_report(self, report_pictures(self))

    def warnings(self) -> list[str]:
        """Families whose test error is far above the target's own variance: predicting the
        mean would do much better, so training diverged or the settings are wrong."""
        return [f"{row['model']}: test MSE is {row['mse_std']:.3g} times the target's variance "
                f"(explained variance {row['explained_variance']:.3g}); training probably "
                f"diverged: lower --lr or the number of epochs, or add --weight-decay."
                for row in self.summary() if not row["mse_std"] <= DIVERGED]


def check_families(keys: Sequence[str]) -> list[str]:
    """The family keys as a list, or an error naming the first unknown one."""
    unknown = [k for k in keys if k not in FAMILIES]
    if unknown:
        raise NetscopeError(f"unknown model family {unknown[0]!r}; choose from "
                            f"{', '.join(FAMILIES)}.")
    if not keys:
        raise NetscopeError("no model family chosen; choose from " + ", ".join(FAMILIES) + ".")
    return list(keys)


def compare(data: TaskData, protocol: Protocol, settings: Settings | None = None,
            families: Sequence[str] | None = None, progress: Progress | None = None,
            jobs: int = 1) -> Comparison:
    """Fit every requested family on every split of ``protocol``; score on original scale.
    ``jobs`` > 1 fits splits in that many worker processes (one thread each); the numbers
    are those of ``jobs=1`` up to floating-point summation order."""
    settings = settings or Settings.for_dataset(data.name)
    keys = check_families(families or list(FAMILIES))
    results = [FamilyResult(FAMILIES[k]) for k in keys]
    splits = protocol.splits
    if jobs > 1 and len(splits) > 1:
        from netscope.multitask.parallel import fit_splits_in_processes

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
