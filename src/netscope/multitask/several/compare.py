"""Every family on the same row splits of several-target data: per target, each family's
scores (mean and SD over splits), its gain over the independent models, and for MMoE and PLE
how each target uses the experts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from netscope.data.targets_table import TargetsData
from netscope.errors import NetscopeError
from netscope.multitask.base import Progress
from netscope.multitask.comparison.metrics import metrics_of, primary
from netscope.multitask.families import FAMILIES, check_families, family, with_balancing
from netscope.multitask.several.fit_split import TargetsRun, fit_targets_split, how
from netscope.multitask.several.prepare import RowSplit, row_splits
from netscope.multitask.targets import KINDS
from netscope.timing import time_left

BASELINE = "pooled-mlp"  # the independent model the joint networks are measured against


@dataclass
class TargetsComparison:
    data: TargetsData
    splits: list[RowSplit]
    settings: object
    keys: list[str]
    runs: dict[str, list[TargetsRun]] = field(default_factory=dict)  # key -> per split
    skipped: list[str] = field(default_factory=list)

    def label(self, key: str) -> str:
        fam = family(key)
        return fam.label if how(fam) != "alone" else ALONE.get(key, fam.label)

    def summary(self) -> list[dict]:
        """One row per (family, target): every metric of the target's kind, mean and SD over
        the splits, the family's training time and (balanced) its conflicting steps."""
        rows = []
        for key in self.keys:
            fam, runs = family(key), self.runs[key]
            for j, (name, kind) in enumerate(zip(self.data.target_names, self.data.kinds,
                                                 strict=True)):
                row = {"family": key, "model": self.label(key),
                       "balancing": fam.balancing if fam.balances else "", "target": name,
                       "kind": kind, "splits": len(runs)}
                for m in metrics_of(KINDS[kind]):
                    vals = np.array([r.seconds if m.key == "train_seconds" else
                                     r.scores[j][m.key] for r in runs], np.float64)
                    row[m.key], row[f"{m.key}_sd"] = _mean_sd(vals)
                conflicts = [r.conflict for r in runs if r.conflict is not None]
                if conflicts:
                    row["conflict_share"] = float(np.mean(conflicts))
                rows.append(row)
        return rows

    def best(self) -> dict[str, dict]:
        """Per target, the summary row of the family with the best primary metric."""
        out: dict[str, dict] = {}
        for row in self.summary():
            key = primary(KINDS[row["kind"]]).key
            if row["target"] not in out or row[key] < out[row["target"]][key]:
                out[row["target"]] = row
        return out

    def gains(self) -> list[dict]:
        """Each family that learns the targets together, per target: the relative change of
        the primary metric (lower is better) against the independent MLP and against the
        best independent model, paired over splits (mean over splits)."""
        alone = [k for k in self.keys if how(family(k)) == "alone"]
        if not alone:
            return []
        rows = []
        for key in self.keys:
            if how(family(key)) == "alone":
                continue
            for j, (name, kind) in enumerate(zip(self.data.target_names, self.data.kinds,
                                                 strict=True)):
                m = primary(KINDS[kind]).key
                mine = np.array([r.scores[j][m] for r in self.runs[key]])
                best_alone = min(alone, key=lambda k: np.mean([r.scores[j][m]
                                                               for r in self.runs[k]]))
                row = {"family": key, "model": self.label(key), "target": name, "metric": m}
                for tag, other in (("mlp", BASELINE), ("best_independent", best_alone)):
                    if other not in self.runs:
                        continue
                    theirs = np.array([r.scores[j][m] for r in self.runs[other]])
                    change = (mine - theirs) / np.abs(theirs)
                    row[f"change_vs_{tag}"] = float(np.mean(change))
                    row[f"wins_vs_{tag}"] = int((change < 0).sum())
                row["best_independent"] = self.label(best_alone)
                rows.append(row)
        return rows

    def gates(self) -> dict[str, np.ndarray]:
        """MMoE and PLE (first split): each target's mean gate weights over the experts."""
        return {k: r[0].gates for k, r in self.runs.items() if r and r[0].gates is not None}

    def warnings(self) -> list[str]:
        return [f"{k}: left out, it takes one kind of target and these targets are of "
                f"several kinds ({', '.join(sorted(set(self.data.kinds)))})"
                for k in self.skipped]


ALONE = {"pooled-ridge": "ridge per target (L2; logistic for classes)",
         "pooled-mlp": "MLP per target", "boosted-trees": "boosted trees per target"}


def _mean_sd(vals: np.ndarray) -> tuple[float, float]:
    return float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0


def targets_families(data: TargetsData, families: Sequence[str] | None,
                     balancing: Sequence[str]) -> tuple[list[str], list[str]]:
    """The run's family keys (balancing variants expanded) and those left out because they
    take one kind and the targets are of several."""
    if families is None:
        keys = [k for k, f in FAMILIES.items() if "targets" in f.layouts]
    else:
        keys = check_families(families)
        wrong = [k for k in keys if "targets" not in FAMILIES[k].layouts]
        if wrong:
            ok = [k for k, f in FAMILIES.items() if "targets" in f.layouts]
            raise NetscopeError(f"model family {wrong[0]!r} does not take several targets on "
                                f"the same rows; choose from {', '.join(ok)}.")
    for k in keys:
        for kind in set(data.kinds):
            if kind not in FAMILIES[k].kinds:
                raise NetscopeError(f"model family {k!r} does not take {kind} targets yet.")
    mixed = len(set(data.kinds)) > 1
    skipped = [k for k in keys if mixed and how(FAMILIES[k]) == "tasks"]
    keys = [k for k in keys if k not in skipped]
    if not keys:
        raise NetscopeError("no chosen family takes targets of several kinds; add shared-"
                            "bottom, mmoe, ple, cross-stitch or an independent family.")
    return with_balancing(keys, balancing), skipped


def compare_targets(data: TargetsData, settings=None, families: Sequence[str] | None = None,
                    balancing: Sequence[str] = ("sum",), splits: int = 1,
                    test_fraction: float = 0.25, seed: int = 0,
                    progress: Progress | None = None, jobs: int = 1) -> TargetsComparison:
    """Fit every family on ``splits`` seeded random row splits; score each target in its
    own units. Networks train as ``settings.training`` says (auto: tuned, as for any
    user's data). ``jobs`` > 1 fits the splits side by side in that many processes (one
    thread each; the numbers are those of ``jobs=1``)."""
    from netscope.multitask.settings import Settings

    settings = settings or Settings()
    if settings.training == "auto":
        settings = replace(settings, training="tuned")
    keys, skipped = targets_families(data, families, balancing)
    parts = row_splits(data, splits, test_fraction, seed)
    if progress:
        for line in data.missing_lines():
            progress(line)
    comp = TargetsComparison(data, parts, settings, keys, {k: [] for k in keys}, skipped)
    start = time.perf_counter()
    outcomes = _in_processes(data, parts, settings, keys, jobs) if jobs > 1 and \
        len(parts) > 1 else (fit_targets_split(data, split, settings, keys, progress, i == 0)
                             for i, split in enumerate(parts))
    for i, outcome in enumerate(outcomes):
        for key, run in zip(keys, outcome, strict=True):
            comp.runs[key].append(run)
        if progress and len(parts) > 1 and i + 1 < len(parts):
            progress(f"{i + 1}/{len(parts)} splits done"
                     f"{time_left(time.perf_counter() - start, i + 1, len(parts))}")
    return comp


def _in_processes(data, parts, settings, keys, jobs: int):
    """Each split in a spawned worker process of one thread, results in split order."""
    from netscope.multitask.comparison.parallel import spawned

    return spawned(fit_targets_split, [(data, split, settings, keys, None, i == 0)
                                       for i, split in enumerate(parts)], jobs)
