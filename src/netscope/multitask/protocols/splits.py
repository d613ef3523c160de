"""Evaluation protocols: which rows train and test, and which rows the scalers see.

A protocol's ``definition`` is printed next to every number it produces, because papers
differ on exactly these choices and numbers mean nothing without them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from netscope.data.tasks import Split, TaskData
from netscope.errors import NetscopeError


@dataclass(frozen=True)
class Protocol:
    name: str
    definition: str
    splits: list[Split]
    scale_from: str  # "all" rows (the course), "train" rows only, or "none" (raw scale)


def random_split(data: TaskData, test_fraction: float, seed: int, name: str) -> Split:
    """Within every task, a seeded random ``test_fraction`` of rows (at least one each side)."""
    if not 0.0 < test_fraction < 1.0:
        raise NetscopeError(f"test fraction must be between 0 and 1, got {test_fraction}.")
    if not 0 <= seed < 2**32:
        raise NetscopeError(f"seed must be from 0 to 2**32-1, got {seed}.")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for t in range(data.n_tasks):
        rows = rng.permutation(data.rows_of(t))
        n_test = int(np.clip(round(test_fraction * rows.size), 1, rows.size - 1))
        test.append(rows[:n_test])
        train.append(rows[n_test:])
    return Split(train=np.sort(np.concatenate(train)), test=np.sort(np.concatenate(test)),
                 name=name)


def lecture(data: TaskData, seed: int = 0, test_fraction: float | None = None) -> Protocol:
    """The course's protocol: one seeded random split inside each task."""
    if data.reference == "survey":
        frac = 0.25 if test_fraction is None else test_fraction
        return Protocol(
            "lecture",
            f"one random {1 - frac:.0%}/{frac:.0%} train/test split inside each subject "
            f"(seed {seed}); ratings on their raw 0-10 scale (centred on the training mean "
            f"for fitting), features as given.",
            [random_split(data, frac, seed, f"random {1 - frac:.0%}/{frac:.0%} (seed {seed})")],
            "none",
        )
    frac = 0.4 if test_fraction is None else test_fraction
    split = [random_split(data, frac, seed, f"random {1 - frac:.0%}/{frac:.0%} (seed {seed})")]
    if data.reference == "school":
        return Protocol(
            "lecture",
            f"one random {1 - frac:.0%}/{frac:.0%} train/test split inside each task "
            f"(seed {seed}); features and target standardized with mean and SD over ALL rows, "
            f"test rows included, to reproduce the course's numbers (the 'standard' protocol "
            f"fits scalers on training rows only).",
            split, "all",
        )
    return Protocol(
        "lecture",
        f"one random {1 - frac:.0%}/{frac:.0%} train/test split inside each task (seed {seed}); "
        f"features and target standardized with the training rows' mean and SD.",
        split, "train",
    )


def standard(data: TaskData, root: str | Path | None = None, n_splits: int | None = None,
             seed: int = 0, test_fraction: float = 0.25,
             progress: Callable[[str], None] | None = None) -> Protocol:
    """The literature's protocol: published splits; scalers fit on training rows only."""
    if n_splits is not None and n_splits < 1:
        raise NetscopeError(f"the number of splits must be >= 1, got {n_splits}.")
    if data.reference == "school":
        from netscope.data.school import N_SPLITS, load_school_split

        k = n_splits or N_SPLITS
        if k > N_SPLITS:
            raise NetscopeError(f"the school data has {N_SPLITS} published splits, "
                                f"not {k}; use --splits 1..{N_SPLITS}.")
        splits = [load_school_split(i, data, root, progress) for i in range(1, k + 1)]
        return Protocol(
            "standard",
            f"the {k} published school splits of Argyriou, Evgeniou & Pontil (2008) "
            f"(11,472 train / 3,890 test rows each); scalers fit on training rows; "
            f"mean and SD over splits.",
            splits, "train",
        )
    if data.reference == "survey":
        from netscope.data.survey import N_CALIBRATION, N_PROFILES

        if n_splits not in (None, 1):
            raise NetscopeError(f"the survey has one standard split (profiles 1-16 train, "
                                f"17-20 test), not {n_splits}; drop --splits.")
        profile = np.tile(np.arange(N_PROFILES), data.n_tasks)
        split = Split(train=np.flatnonzero(profile < N_CALIBRATION),
                      test=np.flatnonzero(profile >= N_CALIBRATION), name="profiles 1-16 / 17-20")
        return Protocol(
            "standard",
            "for every subject, the 16 calibration profiles train and the 4 hold-out profiles "
            "test (Lenk et al. 1996); scalers fit on training rows; errors in rating units.",
            [split], "train",
        )
    k = n_splits or 5
    splits = [random_split(data, test_fraction, seed + i, f"random split {i + 1} (seed {seed + i})")
              for i in range(k)]
    return Protocol(
        "standard",
        f"{k} seeded random {1 - test_fraction:.0%}/{test_fraction:.0%} splits inside each task; "
        f"scalers fit on training rows; mean and SD over splits.",
        splits, "train",
    )
