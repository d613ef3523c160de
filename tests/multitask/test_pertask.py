"""The batched per-task trainer equals a per-task Python loop with torch optimizers."""

import numpy as np
import pytest
import torch

from netscope.multitask.networks.optim import OptimizerSpec
from netscope.multitask.networks.pertask import PerTaskMLP, train_stacked
from netscope.multitask.networks.stacked import batch_plan, init_stacked_mlp, stacked_mlp_forward
from tests.multitask.reference import train_per_task_loop


@pytest.mark.parametrize("rule", ["rmsprop", "adam"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_batched_equals_loop(tiny, rule, weight_decay):
    X, y, t = tiny
    n_tasks = 4
    init = init_stacked_mlp(n_tasks, [3, 5, 4, 1], seed=1)
    plan = batch_plan(t, n_tasks, batch_size=4, epochs=3, rng=np.random.default_rng(0))
    spec = OptimizerSpec(rule, lr=0.01, weight_decay=weight_decay)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    batched = train_stacked(init, Xt, yt, plan, spec)
    looped = train_per_task_loop(init, Xt, yt, plan, spec)
    for k in init:
        assert not torch.equal(batched[k], init[k]) or k.startswith("b")
        torch.testing.assert_close(batched[k], looped[k], rtol=1e-10, atol=1e-10)


def test_plan_covers_each_task_once_per_epoch(tiny):
    _, _, t = tiny
    plan = batch_plan(t, 4, batch_size=5, epochs=2, rng=np.random.default_rng(0))
    steps_per_epoch = plan.shape[0] // 2
    for task in range(4):
        rows = plan[:steps_per_epoch, task].ravel()
        rows = rows[rows >= 0]
        assert sorted(rows) == sorted(np.flatnonzero(t == task))


def test_stacked_forward_by_hand():
    params = {"W0": torch.tensor([[[1.0, -1.0]], [[2.0, 0.5]]], dtype=torch.float64),
              "b0": torch.tensor([[0.0, 0.5], [-1.0, 0.0]], dtype=torch.float64),
              "W1": torch.tensor([[[1.0], [2.0]], [[-1.0], [1.0]]], dtype=torch.float64),
              "b1": torch.tensor([[0.25], [0.0]], dtype=torch.float64)}
    X = torch.tensor([[[1.0]], [[3.0]]], dtype=torch.float64)  # one row per task
    # task 0: h = relu([1, -0.5]) = [1, 0]; out = 1 + 0.25
    # task 1: h = relu([5, 1.5]) = [5, 1.5]; out = -5 + 1.5
    out = stacked_mlp_forward(params, X)
    torch.testing.assert_close(out, torch.tensor([[1.25], [-3.5]], dtype=torch.float64))


def test_estimator_learns_and_predicts_per_task(tiny):
    X, y, t = tiny
    labels = np.array(["north", "south", "east", "west"])[t]
    m = PerTaskMLP(hidden=(8,), epochs=200, batch_size=8, optimizer="adam", lr=0.01).fit(
        X, y, labels)
    pred = m.predict(X, labels)
    assert np.mean((pred - y) ** 2) < 0.2 * np.var(y)


def test_predict_in_chunks_matches_one_pass(tiny):
    X, y, t = tiny
    m = PerTaskMLP(hidden=(5,), epochs=3).fit(X, y, t)
    np.testing.assert_allclose(m._predict(X, t, chunk=7), m._predict(X, t, chunk=10_000))


def test_lazy_plan_equals_the_array_and_stays_one_epoch_in_memory():
    from netscope.multitask.networks.stacked import BatchPlan

    t = np.repeat(np.arange(3), [5, 7, 2])
    lazy = BatchPlan(t, 3, 4, 6, np.random.default_rng(1))
    whole = batch_plan(t, 3, 4, 6, np.random.default_rng(1))
    steps = list(lazy)
    assert len(lazy) == len(steps) == whole.shape[0] == 12
    np.testing.assert_array_equal(np.stack(steps), whole)
    huge = BatchPlan(t, 3, 4, 10**9, np.random.default_rng(0))  # never materialized
    assert len(huge) == 2 * 10**9 and next(iter(huge)).shape == (3, 4)
