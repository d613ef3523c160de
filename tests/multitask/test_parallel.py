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


def test_families_are_grouped_with_what_they_reuse():
    from netscope.multitask.comparison.parallel import units

    keys = ["ridge-per-task", "pooled-mlp", "mtl-ridge", "shared-trunk-accumulate",
            "boosted-trees", "ensemble", "mixed-effects", "shared-trunk-random"]
    assert units(keys) == [["ridge-per-task"],
                           ["pooled-mlp", "shared-trunk-accumulate", "shared-trunk-random"],
                           ["mtl-ridge", "boosted-trees", "ensemble", "mixed-effects"]]


def test_a_dask_cluster_gives_the_local_numbers(monkeypatch):
    """Two worker processes of a local Dask cluster, the grid of splits x family groups."""
    distributed = pytest.importorskip("distributed")
    import os

    for name in list(os.environ):  # Dask's nanny sets thread variables for its workers in
        monkeypatch.setenv(name, os.environ[name])  # this process: put them back after
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                 "MALLOC_TRIM_THRESHOLD_"):
        if name not in os.environ:
            monkeypatch.setenv(name, "")
            monkeypatch.delenv(name)
    X, y, t = tiny_tasks(n_tasks=5, rows=20)
    data = TaskData(X=X, y=y, task=t, task_names=[f"t{k}" for k in range(5)],
                    feature_names=["a", "b", "c"])
    proto = protocols.standard(data, n_splits=2)
    families = ["pooled-ridge", "mtl-ridge", "mixed-effects", "boosted-trees", "ensemble"]
    local = compare(data, proto, families=families)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        messages: list[str] = []
        remote = compare(data, proto, families=families, scheduler=cluster.scheduler_address,
                         progress=messages.append)
    for a, b in zip(local.results, remote.results, strict=True):
        np.testing.assert_allclose([r["mse"] for r in a.runs], [r["mse"] for r in b.runs],
                                   rtol=1e-9)
        np.testing.assert_allclose(a.y_pred, b.y_pred, rtol=1e-9)
    assert sum("Dask cluster at" in m for m in messages) == 2


def test_no_scheduler_there_is_one_clear_error():
    pytest.importorskip("distributed")
    from netscope.errors import NetscopeError

    X, y, t = tiny_tasks(n_tasks=3, rows=10)
    data = TaskData(X=X, y=y, task=t, task_names=["a", "b", "c"], feature_names=["a", "b", "c"])
    with pytest.raises(NetscopeError, match="no Dask scheduler answers there"):
        compare(data, protocols.standard(data, n_splits=2), families=["pooled-ridge"],
                scheduler="tcp://127.0.0.1:1")
