"""Shared-trunk network: hand-written gradients, forward pass, staging and both methods."""

import numpy as np
import pytest
import torch

from netscope.errors import NetscopeError
from netscope.multitask.networks.pooled import PooledMLP
from netscope.multitask.networks.shared_trunk import SharedTrunkMTL, trunk_forward, trunk_grads


def _trunk(seed=0, d=3):
    g = torch.Generator().manual_seed(seed)
    return {"W0": torch.randn(d, 5, generator=g, dtype=torch.float64),
            "b0": torch.randn(5, generator=g, dtype=torch.float64),
            "W1": torch.randn(5, 4, generator=g, dtype=torch.float64),
            "b1": torch.randn(4, generator=g, dtype=torch.float64)}


@pytest.mark.parametrize("loss", ["squared_error", "log_loss", "poisson", "multinomial"])
@pytest.mark.parametrize("start", [0, 1, 2])
def test_hand_gradients_equal_autograd(start, loss):
    from netscope.multitask.networks.pertask import row_loss

    p = _trunk()
    g = torch.Generator().manual_seed(1)
    k, B = 3, 6
    width = {0: 3, 1: 5, 2: 4}[start]
    Z = torch.randn(k, B, width, generator=g, dtype=torch.float64)
    y = torch.randn(k, B, generator=g, dtype=torch.float64)
    if loss != "squared_error":
        y = (y > 0).double() if loss == "log_loss" else torch.round(y.abs() * 2)
    heads = (3,) if loss == "multinomial" else ()  # one head per class: (k, 3, 4), (k, 3)
    if loss == "multinomial":
        y = y.clamp(max=2)
    mask = torch.ones(k, B, dtype=torch.float64)
    mask[1, 4:] = 0  # a short batch
    hw = torch.randn(k, *heads, 4, generator=g, dtype=torch.float64)
    hb = torch.randn(k, *heads, generator=g, dtype=torch.float64)
    as_np = {n: v.numpy() for n, v in p.items()}  # training passes NumPy arrays
    got = trunk_grads(as_np, Z.numpy(), hw.numpy(), hb.numpy(), y.numpy(), mask.numpy(), start,
                      loss)
    got = {n: torch.from_numpy(np.asarray(v)) for n, v in got.items()}
    for t in range(k):
        rows = mask[t] > 0
        leaves = {n: v.clone().requires_grad_(True) for n, v in p.items()}
        w, b = hw[t].clone().requires_grad_(True), hb[t].clone().requires_grad_(True)
        pred = trunk_forward(leaves, Z[t, rows], w, b, start)
        value = row_loss(loss, pred, y[t, rows]).mean()
        names = ["W0", "b0", "W1", "b1"][2 * start:]
        auto = torch.autograd.grad(value, [w, b] + [leaves[n] for n in names])
        torch.testing.assert_close(got["hw"][t], auto[0])
        torch.testing.assert_close(got["hb"][t], auto[1])
        for n, a in zip(names, auto[2:], strict=True):
            torch.testing.assert_close(got[n][t], a)


def test_forward_by_hand():
    p = {"W0": torch.tensor([[1.0, -1.0]], dtype=torch.float64),
         "b0": torch.tensor([0.0, 1.0], dtype=torch.float64),
         "W1": torch.tensor([[1.0], [1.0]], dtype=torch.float64),
         "b1": torch.tensor([-0.5], dtype=torch.float64)}
    X = torch.tensor([[2.0], [-3.0]], dtype=torch.float64)
    # x=2: h0 = relu([2, -1]) = [2, 0]; h1 = relu(2 - .5) = 1.5; head 2*1.5 + 1 = 4
    # x=-3: h0 = relu([-3, 4]) = [0, 4]; h1 = 3.5; head 2*3.5 + 1 = 8
    out = trunk_forward(p, X, torch.tensor([2.0], dtype=torch.float64),
                        torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(out, torch.tensor([4.0, 8.0], dtype=torch.float64))


@pytest.fixture
def pooled(tiny):
    X, y, t = tiny
    return PooledMLP(hidden=(6, 4), epochs=5, batch_size=8).fit(X, y, t)


def test_heads_start_from_pooled_head(tiny, pooled):
    X, y, t = tiny
    m = SharedTrunkMTL(stage_epochs=(0, 0, 0)).fit(X, y, t, pooled=pooled)
    np.testing.assert_allclose(m.predict(X, t), pooled.predict(X, t), atol=1e-12)


def test_stage_one_moves_heads_only(tiny, pooled):
    X, y, t = tiny
    m = SharedTrunkMTL(stage_epochs=(3, 0, 0)).fit(X, y, t, pooled=pooled)
    torch.testing.assert_close(m.trunk_["W0"], pooled.net_[0].weight.detach().T)
    torch.testing.assert_close(m.trunk_["W1"], pooled.net_[2].weight.detach().T)
    assert not torch.allclose(m.head_w_[0], pooled.net_[4].weight.detach()[0])


def test_stage_two_keeps_first_layer(tiny, pooled):
    X, y, t = tiny
    m = SharedTrunkMTL(stage_epochs=(1, 2, 0)).fit(X, y, t, pooled=pooled)
    torch.testing.assert_close(m.trunk_["W0"], pooled.net_[0].weight.detach().T)
    assert not torch.allclose(m.trunk_["W1"], pooled.net_[2].weight.detach().T)


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_accumulate_step_equals_per_task_torch_optimizers(tiny, pooled, wd):
    """One stage-3 step: every task's gradient at the same weights, each task's own Adam,
    the shared layers receive the sum of the tasks' steps."""
    X, y, t = tiny
    lr = 0.01
    m = SharedTrunkMTL(stage_epochs=(0, 0, 1), stage_lr=(lr, lr, lr), batch_size=64,
                       weight_decay=wd)
    m.fit(X, y, t, pooled=pooled)  # batch 64 > task size: one step with all rows
    net = pooled.net_
    start = {"W0": net[0].weight.detach().T, "b0": net[0].bias.detach(),
             "W1": net[2].weight.detach().T, "b1": net[2].bias.detach()}
    total = {k: torch.zeros_like(v) for k, v in start.items()}
    for task in range(4):
        leaves = {k: v.clone().requires_grad_(True) for k, v in start.items()}
        hw = net[4].weight.detach()[0].clone().requires_grad_(True)
        hb = net[4].bias.detach()[0].clone().requires_grad_(True)
        opt = torch.optim.Adam([hw, hb, *leaves.values()], lr=lr, eps=1e-7, weight_decay=wd)
        rows = torch.from_numpy(np.flatnonzero(t == task))
        Xt, yt = torch.from_numpy(X)[rows], torch.from_numpy(y)[rows]
        ((trunk_forward(leaves, Xt, hw, hb) - yt) ** 2).mean().backward()
        opt.step()
        torch.testing.assert_close(m.head_w_[task], hw.detach())
        for k in total:
            total[k] += start[k] - leaves[k].detach()
    for k in total:
        torch.testing.assert_close(m.trunk_[k], start[k] - total[k])


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_random_steps_equal_a_torch_optimizer_per_task(tiny, pooled, wd):
    """The random method's NumPy path: with one task, two stage-3 steps on all its rows are
    two steps of torch's Adam over its head and the whole trunk."""
    X, y, t = tiny
    keep = t == 0
    X0, y0, t0 = X[keep], y[keep], t[keep]
    lr = 0.01
    m = SharedTrunkMTL(method="random", stage_epochs=(0, 0, 2), stage_lr=(lr, lr, lr),
                       batch_size=64,
                       weight_decay=wd).fit(X0, y0, t0, pooled=pooled)
    net = pooled.net_
    leaves = {"W0": net[0].weight.detach().T.clone(), "b0": net[0].bias.detach().clone(),
              "W1": net[2].weight.detach().T.clone(), "b1": net[2].bias.detach().clone()}
    leaves = {k: v.requires_grad_(True) for k, v in leaves.items()}
    hw = net[4].weight.detach()[0].clone().requires_grad_(True)
    hb = net[4].bias.detach()[0].clone().requires_grad_(True)
    opt = torch.optim.Adam([hw, hb, *leaves.values()], lr=lr, eps=1e-7, weight_decay=wd)
    Xt, yt = torch.from_numpy(X0), torch.from_numpy(y0)
    for _ in range(2):
        opt.zero_grad()
        ((trunk_forward(leaves, Xt, hw, hb) - yt) ** 2).mean().backward()
        opt.step()
    torch.testing.assert_close(m.head_w_[0], hw.detach())
    for k, v in leaves.items():
        torch.testing.assert_close(m.trunk_[k], v.detach())


def test_random_method_trains(tiny, pooled):
    X, y, t = tiny
    before = np.mean((pooled.predict(X, t) - y) ** 2)
    m = SharedTrunkMTL(method="random", stage_epochs=(20, 10, 10), stage_lr=(1e-2, 1e-3, 1e-3),
                       batch_size=4).fit(X, y, t, pooled=pooled)
    assert np.mean((m.predict(X, t) - y) ** 2) < before


def test_random_equals_accumulate_while_trunk_is_frozen(tiny, pooled):
    X, y, t = tiny
    a = SharedTrunkMTL(method="accumulate", stage_epochs=(4, 0, 0), batch_size=4).fit(
        X, y, t, pooled=pooled)
    b = SharedTrunkMTL(method="random", stage_epochs=(4, 0, 0), batch_size=4).fit(
        X, y, t, pooled=pooled)
    torch.testing.assert_close(a.head_w_, b.head_w_)


def test_bad_method(tiny):
    X, y, t = tiny
    with pytest.raises(NetscopeError, match="method must be one of"):
        SharedTrunkMTL(method="sometimes").fit(X, y, t)
