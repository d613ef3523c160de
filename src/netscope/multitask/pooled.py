"""One network for all rows: the pooled MLP, and the mini-batch trainer that the
task-gated network reuses (both see every row, in shuffled batches)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from netscope.multitask.base import Progress, TaskEstimator
from netscope.multitask.optim import OptimizerSpec
from netscope.multitask.stacked import glorot


def dense(fan_in: int, fan_out: int, gen: torch.Generator) -> nn.Linear:
    """A float64 Linear layer with Keras's initialization (Glorot uniform, zero bias)."""
    lin = nn.Linear(fan_in, fan_out, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(glorot(None, fan_in, fan_out, gen).T)
        lin.bias.zero_()
    return lin


def mlp(sizes: list[int], seed: int) -> nn.Sequential:
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(dense(a, b, gen))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def train_minibatch(forward, params, X: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
                    spec: OptimizerSpec, epochs: int, batch_size: int, seed: int,
                    name: str, progress: Progress | None = None) -> None:
    """Shuffled mini-batch MSE training of ``forward(X, t)``; Keras ``fit`` semantics."""
    opt = spec.torch(params, fused=True)
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    for epoch in range(epochs):
        order = torch.from_numpy(rng.permutation(n))
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = ((forward(X[rows], t[rows]) - y[rows]) ** 2).mean()
            loss.backward()
            opt.step()
        if progress:
            progress(f"{name}: epoch {epoch + 1}/{epochs}")
    if not all(torch.isfinite(p).all() for p in params):
        raise FloatingPointError(f"{name}: training diverged (non-finite weights); "
                                 f"lower the learning rate.")


class PooledMLP(TaskEstimator):
    """One ReLU MLP for all tasks, ignoring the task (course: Dense 32-16-1, 20 epochs)."""

    family = "pooled MLP"

    def __init__(self, hidden: tuple[int, ...] = (32, 16), epochs: int = 20, batch_size: int = 32,
                 optimizer: str = "adam", lr: float = 1e-3, seed: int = 0,
                 progress: Progress | None = None, weight_decay: float = 0.0) -> None:
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.seed = seed
        self.progress = progress
        self.weight_decay = weight_decay

    def _build(self, n_features: int) -> nn.Sequential:
        return mlp([n_features, *self.hidden, 1], self.seed)

    def _fit(self, X, y, t, n_tasks) -> None:
        self.net_ = self._build(X.shape[1])
        train_minibatch(lambda xb, tb: self.net_(xb).squeeze(-1), list(self.net_.parameters()),
                        torch.from_numpy(X), torch.from_numpy(t), torch.from_numpy(y),
                        OptimizerSpec(self.optimizer, self.lr, weight_decay=self.weight_decay),
                        self.epochs, self.batch_size, self.seed, "pooled MLP", self.progress)

    def _predict(self, X, t) -> np.ndarray:
        with torch.no_grad():
            return self.net_(torch.from_numpy(X)).squeeze(-1).numpy()

    def _state(self):
        return self.net_.state_dict()

    def _set_state(self, state):
        n_features = state["0.weight"].shape[1]
        self.net_ = self._build(n_features)
        self.net_.load_state_dict(state)
