"""One network for all rows, task ignored: the pooled MLP (Keras-style dense layers, trained
in shuffled mini-batches by ``flat_train``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from netscope.multitask.base import Progress
from netscope.multitask.linear.glm import mean_of
from netscope.multitask.networks.flat_train import (
    FlatParams,
    GradFn,
    dense_backward,
    n_outputs,
    output_residual,
    single,
    train_flat,
)
from netscope.multitask.networks.optim import OptimizerSpec
from netscope.multitask.networks.stacked import glorot
from netscope.multitask.networks.tuned import NetworkEstimator


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


def mlp_gradient(flat: FlatParams, X: np.ndarray, y: np.ndarray,
                 loss: str = "squared_error") -> GradFn:
    """The batch gradient of a Linear/ReLU stack (one output, or one per class), by hand."""
    values = flat.views()
    weights, biases = values[0::2], values[1::2]
    last = len(weights) - 1

    def grad(rows: np.ndarray, out: list[np.ndarray]) -> None:
        acts, pres = [X[rows]], []
        for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
            a = acts[-1] @ W.T
            a += b
            if i < last:
                pres.append(a)
                acts.append(np.maximum(a, 0.0))
        d = output_residual(loss, a, y[rows])
        for i in range(last, -1, -1):
            d = dense_backward(d, acts[i], weights[i], out[2 * i], out[2 * i + 1])
            if i:
                d *= pres[i - 1] > 0
    return grad


class PooledMLP(NetworkEstimator):
    """One ReLU MLP for all tasks, ignoring the task (course: Dense 32-16-1, 20 epochs)."""

    label = "pooled MLP"

    def __init__(self, *, hidden: tuple[int, ...] = (32, 16), epochs: int = 20,
                 batch_size: int = 32,
                 optimizer: str = "adam", lr: float = 1e-3, seed: int = 0,
                 progress: Progress | None = None, weight_decay: float = 0.0,
                 loss: str = "squared_error", tune: bool = False, max_epochs: int = 300,
                 patience: int = 10) -> None:
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.seed = seed
        self.progress = progress
        self.weight_decay = weight_decay
        self._training(loss, tune, max_epochs, patience)

    def _train(self, X, y, t, n_tasks, hp, stop) -> None:
        hidden = [int(h * hp["width"]) for h in self.hidden]
        self.net_ = mlp([X.shape[1], *hidden, n_outputs(self.loss, y)], self.seed)
        flat = FlatParams.adopt(list(self.net_.parameters()))
        train_flat(mlp_gradient(flat, X, y, self.loss), flat, X.shape[0],
                   OptimizerSpec(self.optimizer, hp["lr"], weight_decay=hp["weight_decay"]),
                   hp["epochs"], self.batch_size_, self.seed, "pooled MLP",
                   None if stop else self.progress, stop)

    def _predict(self, X, t) -> np.ndarray:
        with torch.no_grad():
            return mean_of(self.loss, single(self.net_(torch.from_numpy(X)).numpy()))

    def _predict_population(self, X) -> np.ndarray:
        return self._predict(X, np.zeros(X.shape[0], np.int64))  # the task is not used

    def _state(self):
        return self.net_.state_dict()

    def _set_state(self, state):
        """The layers' sizes come from the saved weights (a search may have widened them)."""
        weights = [state[k] for k in sorted(state, key=lambda k: int(k.split(".")[0]))
                   if k.endswith("weight")]
        sizes = [weights[0].shape[1], *(w.shape[0] for w in weights)]
        self.net_ = mlp(sizes, self.seed)
        self.net_.load_state_dict(state)
