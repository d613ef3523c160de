"""Splits in worker processes give the numbers of the one-process loop."""

import numpy as np
import pytest

from netscope.data.tasks import TaskData
from netscope.multitask import protocols
from netscope.multitask.comparison.results import compare
from tests.conftest import tiny_tasks


def test_jobs_equal_the_serial_loop():
    X, y, t = tiny_tasks(n_tasks=5, rows=20)
    data = TaskData(X=X, y=y, task=t, task_names=[f"t{k}" for k in range(5)],
                    feature_names=["a", "b", "c"])
    proto = protocols.standard(data, n_splits=3)
    families = ["mtl-ridge", "mixed-effects", "boosted-trees"]
    serial = compare(data, proto, families=families)
    messages: list[str] = []
    parallel = compare(data, proto, families=families, jobs=2, progress=messages.append)
    for a, b in zip(serial.results, parallel.results, strict=True):
        assert [r["split"] for r in a.runs] == [r["split"] for r in b.runs]
        np.testing.assert_allclose([r["mse"] for r in a.runs], [r["mse"] for r in b.runs],
                                   rtol=1e-7)
        np.testing.assert_allclose(a.y_pred, b.y_pred, rtol=1e-7)
        assert b.model is not None and b.model.progress is None
    assert sum("done (" in m for m in messages) == 3  # one line per finished split


def test_a_failing_split_reports_its_error():
    X, y, t = tiny_tasks(n_tasks=5, rows=20)
    data = TaskData(X=X, y=y, task=t, task_names=[f"t{k}" for k in range(5)],
                    feature_names=["a", "b", "c"])
    proto = protocols.standard(data, n_splits=2)
    from netscope.errors import NetscopeError
    from netscope.multitask.settings import Settings

    with pytest.raises(NetscopeError, match="exactly two hidden layers"):
        compare(data, proto, Settings(pooled_hidden=(4,), pooled_epochs=1),
                families=["shared-trunk-accumulate"], jobs=2)
    with pytest.raises(NetscopeError, match="per_task_optimizer must be one of rmsprop"):
        Settings(per_task_optimizer="adagrad")  # refused before any split starts
