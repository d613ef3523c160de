"""NumPy training on a flat vector: hand-written gradients equal autograd, the optimizers
equal torch.optim step by step, and the whole trainer equals a plain torch training loop."""

import numpy as np
import pytest
import torch

from netscope.multitask.networks.flat_train import FlatParams, train_flat
from netscope.multitask.networks.gated import GatedNet, gated_gradient
from netscope.multitask.networks.optim import OptimizerSpec, StackedOptimizer
from netscope.multitask.networks.pooled import mlp, mlp_gradient


def _data(n=23, d=4, tasks=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    t = rng.integers(0, tasks, n)
    y = X @ rng.standard_normal(d) + t - 1.0
    return X, y, t


def _autograd(net, forward, rows, y, loss="squared_error"):
    from netscope.multitask.networks.pertask import row_loss

    net.zero_grad()
    row_loss(loss, forward(rows), torch.from_numpy(y[rows])).mean().backward()
    return [p.grad.numpy().copy() for p in net.parameters()]


def _target(y, loss):
    """The regression target, or yes/no, three classes and counts made from it."""
    if loss == "log_loss":
        return (y > 0).astype(float)
    if loss == "multinomial":
        return np.digitize(y, [-0.5, 0.5]).astype(float)
    return np.round(np.abs(y)) if loss == "poisson" else y


def _outputs(loss):
    return 3 if loss == "multinomial" else 1


def _single(out):
    return out.squeeze(-1) if out.shape[-1] == 1 else out


LOSSES = ["squared_error", "log_loss", "poisson", "multinomial"]


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("hidden", [(5,), (6, 3), (4, 4, 2)])
def test_mlp_gradient_equals_autograd(hidden, loss):
    X, y, _ = _data()
    y = _target(y, loss)
    net = mlp([X.shape[1], *hidden, _outputs(loss)], seed=1)
    flat = FlatParams.adopt(list(net.parameters()))
    flat.values += np.random.default_rng(2).normal(0, 0.3, flat.values.size)  # biases != 0
    rows = np.array([0, 3, 4, 9, 11])
    got = flat.views(np.zeros_like(flat.values))
    mlp_gradient(flat, X, y, loss)(rows, got)
    want = _autograd(net, lambda r: _single(net(torch.from_numpy(X[r]))), rows, y, loss)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("loss", LOSSES)
def test_gated_gradient_equals_autograd(loss):
    X, y, t = _data()
    y = _target(y, loss)
    net = GatedNet(X.shape[1], 3, width=5, hidden=3, seed=0, outputs=_outputs(loss))
    flat = FlatParams.adopt(list(net.parameters()))
    flat.values += np.random.default_rng(3).normal(0, 0.5, flat.values.size)
    rows = np.array([1, 2, 5, 6, 7, 8, 20])  # repeated tasks: the embedding rows accumulate
    got = flat.views(np.zeros_like(flat.values))
    gated_gradient(flat, X, t, y, loss)(rows, got)
    want = _autograd(net, lambda r: net(torch.from_numpy(X[r]), torch.from_numpy(t[r])), rows, y,
                     loss)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_adopted_parameters_share_memory():
    net = mlp([3, 4, 1], seed=0)
    before = [p.detach().clone() for p in net.parameters()]
    flat = FlatParams.adopt(list(net.parameters()))
    for p, b in zip(net.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), b)
    flat.values[:] = 1.5
    assert all(bool((p.detach() == 1.5).all()) for p in net.parameters())
    with pytest.raises(TypeError, match="float64"):
        FlatParams.adopt(list(torch.nn.Linear(2, 2).parameters()))


@pytest.mark.parametrize("rule", ["adam", "rmsprop", "sgd"])
@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_optimizer_equals_torch(rule, wd):
    spec = OptimizerSpec(rule, lr=0.05, weight_decay=wd)
    rng = np.random.default_rng(0)
    w = rng.standard_normal(7)
    ref = torch.tensor(w.copy(), requires_grad=True)
    torch_opt = spec.torch([ref])
    ours, one = StackedOptimizer(spec, 1), np.zeros(1, dtype=np.int64)  # one "task"
    for _ in range(6):
        g = rng.standard_normal(7)
        ref.grad = torch.from_numpy(g.copy())
        torch_opt.step()
        ours.tick(one)
        w -= ours.delta("w", g[None], one, w[None])[0]
    np.testing.assert_allclose(w, ref.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_training_equals_torch_loop():
    """Same shuffles, same batches (a short last one), same Adam: the same weights."""
    X, y, _ = _data(n=29)
    net, ref = mlp([4, 6, 3, 1], seed=0), mlp([4, 6, 3, 1], seed=0)
    spec = OptimizerSpec("adam", lr=0.01, weight_decay=0.01)
    flat = FlatParams.adopt(list(net.parameters()))
    train_flat(mlp_gradient(flat, X, y), flat, X.shape[0], spec, epochs=4, batch_size=8,
               seed=3, name="test")
    opt = spec.torch(ref.parameters())
    rng = np.random.default_rng(3)
    for _ in range(4):
        order = rng.permutation(X.shape[0])
        for start in range(0, X.shape[0], 8):
            rows = order[start:start + 8]
            opt.zero_grad()
            pred = ref(torch.from_numpy(X[rows])).squeeze(-1)
            ((pred - torch.from_numpy(y[rows])) ** 2).mean().backward()
            opt.step()
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-10, atol=1e-12)


def test_divergence_is_reported():
    X, y, _ = _data()
    net = mlp([4, 3, 1], seed=0)
    flat = FlatParams.adopt(list(net.parameters()))
    with pytest.raises(FloatingPointError, match="diverged"):
        train_flat(mlp_gradient(flat, X, y * 1e200), flat, X.shape[0],
                   OptimizerSpec("sgd", lr=1e10), 3, 8, 0, "test")
