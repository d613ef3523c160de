"""Per-task optimizer state on stacked parameters equals separate torch optimizers."""

import pytest
import torch

from netscope.multitask.networks.optim import OptimizerSpec, StackedOptimizer


@pytest.mark.parametrize("rule", ["adam", "rmsprop", "sgd"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_stacked_equals_separate_optimizers_with_skipped_steps(rule, weight_decay):
    gen = torch.Generator().manual_seed(0)
    T, shape = 3, (4, 2)
    spec = OptimizerSpec(rule, lr=0.01, weight_decay=weight_decay)
    stacked = torch.randn(T, *shape, generator=gen, dtype=torch.float64)
    separate = [stacked[t].clone().requires_grad_(True) for t in range(T)]
    opts = [spec.torch([p]) for p in separate]
    opt = StackedOptimizer(spec, T)
    for step in range(6):
        grads = torch.randn(T, *shape, generator=gen, dtype=torch.float64)
        active = torch.tensor([t for t in range(T) if (step + t) % 3 != 0])  # some tasks skip
        opt.tick(active.numpy())  # the optimizer works on NumPy arrays (views of tensors)
        stacked[active] -= torch.from_numpy(opt.delta("w", grads[active].numpy(),
                                                      active.numpy(), stacked[active].numpy()))
        for t in active.tolist():
            separate[t].grad = grads[t].clone()
            opts[t].step()
    for t in range(T):
        torch.testing.assert_close(stacked[t], separate[t].detach(), rtol=1e-12, atol=1e-12)


def test_bad_spec():
    from netscope.errors import NetscopeError

    with pytest.raises(NetscopeError, match="optimizer must be one of"):
        OptimizerSpec("lbfgs")
    with pytest.raises(NetscopeError, match="positive number"):
        OptimizerSpec("adam", lr=-1)
    with pytest.raises(NetscopeError, match="weight decay must be >= 0"):
        OptimizerSpec("adam", weight_decay=-0.1)
