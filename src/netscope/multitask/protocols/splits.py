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
        + ("features and target standardized with the training rows' mean and SD."
           if data.kind == "regression" else "features standardized with the training rows' "
           f"mean and SD; the {data.kind} target as it is."),
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


def new_tasks(data: TaskData, folds: int = 5, seed: int = 0,
              seen_fraction: float = 0.25) -> Protocol:
    """Whole tasks held out: the tasks are dealt at random into ``folds`` groups; in split k
    every row of group k's tasks tests (tasks never seen in training), and of the other
    tasks a random ``seen_fraction`` of each task's rows tests too, so error on new tasks is
    reported beside error on seen ones. Scalers fit on training rows."""
    if folds < 2:
        raise NetscopeError(f"--protocol new-tasks needs at least 2 folds, got {folds}.")
    if data.n_tasks < folds:
        raise NetscopeError(f"--protocol new-tasks deals the tasks into {folds} folds, but "
                            f"{data.name} has {data.n_tasks} task(s); use --splits "
                            f"{max(2, data.n_tasks)} or fewer (at least 2 tasks are needed).")
    rng = np.random.default_rng(seed)
    fold = np.empty(data.n_tasks, np.int64)
    fold[rng.permutation(data.n_tasks)] = np.arange(data.n_tasks) % folds
    seen = random_split(data, seen_fraction, seed, "seen")
    splits = []
    for k in range(folds):
        out = fold[data.task] == k
        train = seen.train[~out[seen.train]]
        test = np.sort(np.concatenate([seen.test[~out[seen.test]], np.flatnonzero(out)]))
        splits.append(Split(train=train, test=test, new_tasks=True,
                            name=f"task fold {k + 1} of {folds} (seed {seed})"))
    return Protocol(
        "new-tasks",
        f"grouped {folds}-fold cross-validation over tasks (seed {seed}): in each split one "
        f"fold's tasks ({data.n_tasks // folds}-{-(-data.n_tasks // folds)} tasks) are held "
        f"out whole and predicted at the population level (new tasks); of the other tasks a "
        f"random {seen_fraction:.0%} of each task's rows test too (seen tasks); scalers fit on "
        f"training rows; mean and SD over the {folds} splits.",
        splits, "train",
    )


def hold_out_tasks(data: TaskData, protocol: Protocol, fraction: float,
                   seed: int = 0) -> Protocol:
    """``protocol`` with a random ``fraction`` of the tasks held out whole in each split
    (their training rows removed, their test rows kept: new tasks beside seen ones)."""
    if not 0 < fraction < 1:
        raise NetscopeError(f"--new-task-fraction must be between 0 and 1, got {fraction}.")
    n_out = int(round(fraction * data.n_tasks))
    if n_out < 1 or n_out >= data.n_tasks:
        raise NetscopeError(f"--new-task-fraction {fraction} holds out {n_out} of "
                            f"{data.n_tasks} tasks; choose a share that holds out at least "
                            f"one task and keeps one.")
    splits = []
    for i, split in enumerate(protocol.splits):
        out = np.zeros(data.n_tasks, bool)
        out[np.random.default_rng(seed + i).choice(data.n_tasks, n_out, replace=False)] = True
        keep = ~out[data.task[split.train]]
        splits.append(Split(train=split.train[keep], test=split.test, new_tasks=True,
                            name=f"{split.name}, {n_out} tasks held out"))
    return Protocol(protocol.name, protocol.definition + f" In each split {n_out} random "
                    f"task(s) ({fraction:.0%}) are held out of training whole and predicted "
                    f"at the population level (new tasks, scored apart).", splits,
                    protocol.scale_from)
