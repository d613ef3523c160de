"""Nothing fits on test rows: every penalty, covariance, weight and stopping point of every
family comes from training rows, so replacing the test targets changes no fitted number."""

import numpy as np
import pytest
import torch

from netscope.data.tasks import TaskData
from netscope.multitask.comparison.fit_split import fit_split
from netscope.multitask.families import FAMILIES
from netscope.multitask.protocols import random_split
from netscope.multitask.settings import Settings
from tests.conftest import tiny_tasks

SMALL = Settings(per_task_hidden=(4,), per_task_epochs=2, pooled_epochs=2, gated_epochs=2,
                 stage_epochs=(1, 1, 1), batch_size=8)


def _data(y):
    X, _, t = tiny_tasks(n_tasks=5, rows=16)
    return TaskData(X=X, y=y, task=t, task_names=[f"t{k}" for k in range(5)],
                    feature_names=["a", "b", "c"])


@pytest.mark.parametrize("scale_from", ["train", "none"])
def test_test_targets_move_no_fitted_parameter(scale_from):
    _, y, _ = tiny_tasks(n_tasks=5, rows=16)
    data = _data(y)
    split = random_split(data, 0.25, seed=0, name="s")
    other = y.copy()
    other[split.test] = np.random.default_rng(1).permutation(y[split.test]) * 3 + 7
    keys = list(FAMILIES)
    a = fit_split(data, split, scale_from, SMALL, keys, keep=True)
    b = fit_split(_data(other), split, scale_from, SMALL, keys, keep=True)
    for key, ra, rb in zip(keys, a, b, strict=True):
        sa, sb = ra.model._state(), rb.model._state()
        assert sa.keys() == sb.keys(), key
        for name in sa:
            assert torch.equal(sa[name], sb[name]), f"{key}: {name} depends on test targets"
        assert ra.scores["mse"] != rb.scores["mse"], key  # the scores do see the test rows
