"""The ILEA London schools exam data (Goldstein 1991) as used in the multi-task literature.

``school_b.mat`` holds ``x`` (28 x 15362: 27 attributes with the categorical ones one-hot,
plus a bias row), ``y`` (exam score) and ``task_indexes`` (1-based start row of each of the
139 schools; the last school runs to the final row).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from netscope.data.matfile import read_mat
from netscope.data.sources import data_dir, ensure
from netscope.data.tasks import Split, TaskData
from netscope.errors import NetscopeError

# The one-hot columns follow the original codes in increasing order (README.txt beside the
# data): the student's VR band is coded VR1=2, VR2=3, VR3=1, so its columns are bands 3, 1, 2;
# the gender columns come out female, male, as the data themselves show (every student of a
# girls' school has the first one set, and girls score higher on average, as in Goldstein's
# analyses). tests/data/test_school.py checks both against the data's statistics.
FEATURES = (
    ["year_1985", "year_1986", "year_1987", "pct_free_school_meals", "pct_vr1_band",
     "gender_female", "gender_male", "vr_band_3", "vr_band_1", "vr_band_2"]
    + [f"ethnic_{e}" for e in ("eswi", "african", "arab", "bangladeshi", "caribbean", "greek",
                               "indian", "pakistani", "se_asian", "turkish", "other")]
    + ["school_mixed", "school_boys", "school_girls",
       "denomination_maintained", "denomination_coe", "denomination_rc", "bias"]
)
N_SPLITS = 10


def _starts_to_tasks(starts: np.ndarray, n_rows: int, where: str) -> np.ndarray:
    """Convert 1-based start rows into a task id per row; the last task runs to the end."""
    starts = np.asarray(starts, dtype=np.int64).reshape(-1) - 1
    if starts.size == 0 or starts[0] != 0 or np.any(np.diff(starts) <= 0) or starts[-1] >= n_rows:
        raise NetscopeError(
            f"{where}: task start indexes must begin at 1 and increase strictly below row "
            f"{n_rows + 1}; got {starts[:3] + 1}..."
        )
    sizes = np.diff(np.append(starts, n_rows))
    return np.repeat(np.arange(starts.size), sizes)


def load_school(root: str | Path | None = None,
                progress: Callable[[str], None] | None = None) -> TaskData:
    """All 15,362 students in 139 schools; the target is the exam score (1..70)."""
    root = data_dir(root)
    path = ensure("school/school_b.mat", root, progress=progress)
    m = read_mat(path, ("x", "y", "task_indexes"))
    X, y = m["x"].T.astype(np.float64), m["y"].reshape(-1).astype(np.float64)
    if X.shape[0] != y.shape[0]:
        raise NetscopeError(f"{path}: x has {X.shape[0]} rows but y has {y.shape[0]}.")
    names = FEATURES if X.shape[1] == len(FEATURES) else [f"x{i}" for i in range(X.shape[1])]
    task = _starts_to_tasks(m["task_indexes"], X.shape[0], str(path))
    return TaskData(
        X=X, y=y, task=task, task_names=[f"school_{i + 1}" for i in range(task.max() + 1)],
        feature_names=list(names), name="school", target_name="exam_score", reference="school",
    )


def load_school_split(i: int, data: TaskData, root: str | Path | None = None,
                      progress: Callable[[str], None] | None = None) -> Split:
    """Standard split ``i`` (1..10) of Argyriou, Evgeniou & Pontil (2008), as 0-based rows."""
    if not 1 <= i <= N_SPLITS:
        raise NetscopeError(f"school split must be 1..{N_SPLITS}, got {i}.")
    root = data_dir(root)
    path = ensure(f"school/school_{i}_indexes.mat", root, progress=progress)
    m = read_mat(path, ("tr", "tst", "tr_indexes", "tst_indexes"))
    n = data.X.shape[0]
    sides = {}
    for key in ("tr", "tst"):
        rows = m[key].reshape(-1).astype(np.int64) - 1
        if rows.size == 0 or rows.min() < 0 or rows.max() >= n:
            raise NetscopeError(f"{path}: '{key}' holds indexes outside 1..{n}.")
        tasks = _starts_to_tasks(m[f"{key}_indexes"], rows.size, f"{path}:{key}_indexes")
        if not np.array_equal(tasks, data.task[rows]):
            raise NetscopeError(
                f"{path}: '{key}_indexes' disagrees with the schools of the rows in '{key}'; "
                f"the split does not belong to this data set."
            )
        sides[key] = rows
    split = Split(train=sides["tr"], test=sides["tst"], name=f"school split {i}")
    split.check(data)
    return split
