"""Networks that are trained: early stopping keeps the best epoch's weights, per task for
the per-task MLP and per stage for the shared trunk; nothing of the test rows is used."""

import numpy as np
import pytest

from netscope.multitask.networks.gated import TaskGatedMLP
from netscope.multitask.networks.pertask import PerTaskMLP
from netscope.multitask.networks.pooled import PooledMLP
from netscope.multitask.networks.shared_trunk import SharedTrunkMTL
from netscope.multitask.networks.tuned import EarlyStopping, validation_rows


def test_early_stopping_keeps_the_best_epoch():
    losses = iter([5.0, 3.0, 2.0, 2.5, 2.4, 2.6, 2.7])
    state = {"epoch": 0}

    def snapshot():
        return state["epoch"]

    stop = EarlyStopping(lambda: next(losses), snapshot, patience=3)
    for epoch in range(1, 8):
        state["epoch"] = epoch
        if stop(epoch):
            break
    assert epoch == 6 and stop.best_epoch == 3 and stop.best_state == 3 and stop.best_loss == 2.0


def noisy(seed=0, T=8, n=60):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(T * n, 4))
    t = np.repeat(np.arange(T), n)
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] + rng.normal(0, 1, T)[t] * 0.5 + rng.normal(0, 0.5, T * n)
    return X, y, t


@pytest.mark.parametrize("cls", [PooledMLP, TaskGatedMLP])
def test_restored_weights_are_the_best_validation_epoch(cls):
    """The kept model scores the validation rows exactly at the best loss the search saw."""
    X, y, t = noisy()
    m = cls(tune=True, max_epochs=40, patience=5, lr=1e-2).fit(X, y, t)
    va = validation_rows(t, 0.2, 0)
    best = min(r["loss"] for r in m.search_)
    assert np.mean((m.predict(X[va], t[va]) - y[va]) ** 2) == pytest.approx(best, rel=1e-10)
    assert m.chosen_["epochs"] == min(m.search_, key=lambda r: r["loss"])["epochs"]
    assert "chosen by early stopping" in m.fit_summary()[0]


def test_per_task_networks_stop_each_at_its_own_best():
    X, y, t = noisy(T=4)
    m = PerTaskMLP(tune=True, max_epochs=60, patience=5).fit(X, y, t)
    va = validation_rows(t, 0.2, 0)
    err = (m.predict(X[va], t[va]) - y[va]) ** 2
    per_task = np.bincount(t[va], weights=err) / np.bincount(t[va])
    best = min(r["loss"] for r in m.search_)
    counts = np.bincount(t[va])
    assert (per_task * counts).sum() / counts.sum() == pytest.approx(best, rel=1e-10)


def test_shared_trunk_stops_each_stage():
    X, y, t = noisy()
    pooled = PooledMLP(tune=True, max_epochs=20, patience=3).fit(X, y, t)
    m = SharedTrunkMTL(tune=True, max_epochs=15, patience=3).fit(X, y, t, pooled=pooled)
    assert len(m.chosen_["epochs"]) == 3 and all(1 <= e <= 15 for e in m.chosen_["epochs"])
    va = validation_rows(t, 0.2, 0)
    best = min(r["loss"] for r in m.search_)
    assert np.mean((m.predict(X[va], t[va]) - y[va]) ** 2) == pytest.approx(best, rel=1e-10)


def test_tuned_networks_round_trip(tmp_path):
    """A search may widen the layers: a saved model comes back with the sizes it has."""
    from netscope.multitask.base import load_model

    X, y, t = noisy()
    for cls in (PooledMLP, TaskGatedMLP):
        m = cls(tune=True, max_epochs=5, patience=2).fit(X, y, t)
        again = load_model(m.save(tmp_path / cls.__name__))
        np.testing.assert_allclose(again.predict(X, t), m.predict(X, t), atol=1e-12)
