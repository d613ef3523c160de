"""Lenk et al. (1996) computer conjoint survey: 190 subjects rate the same 20 computers 0..10.

Each subject is a task; each computer profile is a row with 13 binary (+/-1) attributes.
The first 16 profiles are the calibration design and the last 4 are hold-outs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from netscope.data.matfile import read_mat
from netscope.data.sources import data_dir, ensure
from netscope.data.tasks import TaskData
from netscope.errors import NetscopeError

ATTRIBUTES = ["constant", "hot_line", "ram", "screen_size", "cpu_speed", "hard_disk", "cd_rom",
              "cache", "color_of_unit", "availability", "warranty", "software", "guarantee",
              "price"]
N_PROFILES = 20
N_CALIBRATION = 16


def load_survey(root: str | Path | None = None,
                progress: Callable[[str], None] | None = None) -> TaskData:
    """190 x 20 ratings as 3,800 rows; row order is subject-major, profile-minor."""
    root = data_dir(root)
    path = ensure("computer_survey/conjointAnalysisComputerBuyers.mat", root, progress=progress)
    m = read_mat(path, ("designMarix", "likeBuy"))
    design, ratings = m["designMarix"].astype(np.float64), m["likeBuy"].astype(np.float64)
    if design.shape != (N_PROFILES, len(ATTRIBUTES)) or ratings.shape[1] != N_PROFILES:
        raise NetscopeError(
            f"{path}: expected designMarix 20x14 and likeBuy Sx20, got {design.shape} "
            f"and {ratings.shape}."
        )
    n_subjects = ratings.shape[0]
    X = np.tile(design, (n_subjects, 1))
    y = ratings.reshape(-1)
    task = np.repeat(np.arange(n_subjects), N_PROFILES)
    return TaskData(
        X=X, y=y, task=task, task_names=[f"subject_{i + 1}" for i in range(n_subjects)],
        feature_names=list(ATTRIBUTES), name="survey", target_name="likelihood_to_buy",
        reference="survey",
    )
