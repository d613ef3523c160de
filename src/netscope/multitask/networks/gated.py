"""Task-gated network: the task picks which projected features pass.

h = sigmoid(E[task]) * relu(x W_p + b_p)   (embedding and projection both of size 32)
out = relu(h W_1 + b_1) w_o + b_o          (Dense 16, then a linear output)
One network for all rows; the per-task part is only the 32-number gate.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from netscope.multitask.balancing.balancer import Balancer
from netscope.multitask.base import Progress, TaskRelations
from netscope.multitask.linear.glm import mean_of
from netscope.multitask.networks.flat_train import (
    FlatParams,
    GradFn,
    dense_backward,
    n_outputs,
    output_loss,
    output_residual,
    train_flat,
)
from netscope.multitask.networks.optim import OptimizerSpec
from netscope.multitask.networks.pooled import dense
from netscope.multitask.networks.tuned import NetworkEstimator


class GatedNet(nn.Module):
    def __init__(self, n_features: int, n_tasks: int, width: int = 32, hidden: int = 16,
                 seed: int = 0, outputs: int = 1) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.embed = nn.Embedding(n_tasks, width, dtype=torch.float64)
        with torch.no_grad():  # Keras's Embedding default: uniform(-0.05, 0.05)
            self.embed.weight.copy_((torch.rand(n_tasks, width, generator=gen,
                                                dtype=torch.float64) * 2 - 1) * 0.05)
        self.project = dense(n_features, width, gen)
        self.hidden = dense(width, hidden, gen)
        self.out = dense(hidden, outputs, gen)  # one per class for several classes

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.gated(x, torch.sigmoid(self.embed(t)))

    def gated(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """The output for rows whose gates are given (a task's, or the mean gate): (n,),
        or (n, K) with one output per class."""
        h = gate * torch.relu(self.project(x))
        out = self.out(torch.relu(self.hidden(h)))
        return out.squeeze(-1) if out.shape[-1] == 1 else out


def gated_gradient(flat: FlatParams, X: np.ndarray, t: np.ndarray, y: np.ndarray,
                   loss: str = "squared_error") -> GradFn:
    """The batch gradient of ``GatedNet`` by hand (parameters in ``GatedNet`` order). The
    embedding's gradient is dense, as torch's, so Adam moves every task's row every step."""
    E, Wp, bp, W1, b1, Wo, bo = flat.views()

    def grad(rows: np.ndarray, out: list[np.ndarray]) -> None:
        gE, gWp, gbp, gW1, gb1, gWo, gbo = out
        x, tb = X[rows], t[rows]
        gate = 1.0 / (1.0 + np.exp(-E[tb]))
        a_p = x @ Wp.T
        a_p += bp
        proj = np.maximum(a_p, 0.0)
        h = gate * proj
        a1 = h @ W1.T
        a1 += b1
        h1 = np.maximum(a1, 0.0)
        d = output_residual(loss, h1 @ Wo.T + bo, y[rows])
        d = dense_backward(d, h1, Wo, gWo, gbo) * (a1 > 0)
        d = dense_backward(d, h, W1, gW1, gb1)
        dense_backward(d * gate * (a_p > 0), x, Wp, gWp, gbp)
        gE.fill(0.0)
        np.add.at(gE, tb, d * proj * gate * (1.0 - gate))
    return grad


def gated_balanced_gradient(flat: FlatParams, X: np.ndarray, t: np.ndarray, y: np.ndarray,
                            loss: str, balancer: Balancer) -> GradFn:
    """The batch gradient of ``GatedNet`` with the tasks balanced: each task in the batch
    has its mean loss over its rows; the per-task gradients of the shared layers (all but
    the embedding) come from one batched pass (per-row backward signals, summed per task
    through a tasks x rows matrix), the strategy combines them, and each task's embedding
    row takes its own gradient times the strategy's scale."""
    E, Wp, bp, W1, b1, Wo, bo = flat.views()

    def grad(rows: np.ndarray, out: list[np.ndarray]) -> None:
        x, tb, yb = X[rows], t[rows], y[rows]
        tasks, inv = np.unique(tb, return_inverse=True)
        M = np.zeros((len(tasks), len(rows)))
        M[inv, np.arange(len(rows))] = 1.0
        M /= M.sum(1, keepdims=True)  # each task's mean over its rows
        gate = 1.0 / (1.0 + np.exp(-E[tb]))
        a_p = x @ Wp.T + bp
        proj = np.maximum(a_p, 0.0)
        h = gate * proj
        a1 = h @ W1.T + b1
        h1 = np.maximum(a1, 0.0)
        z = h1 @ Wo.T + bo
        d_out = output_residual(loss, z, yb) * len(rows)  # each row's own d loss / d out
        d_a1 = (d_out @ Wo) * (a1 > 0)
        d_h = d_a1 @ W1
        d_ap = d_h * gate * (a_p > 0)
        per_task = [(M @ (d[:, :, None] * inp[:, None, :]).reshape(len(rows), -1))
                    .reshape(len(tasks), d.shape[1], inp.shape[1])
                    for d, inp in ((d_ap, x), (d_a1, h), (d_out, h1))]
        biases = [M @ d for d in (d_ap, d_a1, d_out)]
        k = len(tasks)
        J = np.concatenate([part.reshape(k, -1) for pair in zip(per_task, biases, strict=True)
                            for part in pair], 1)
        lost = M @ output_loss(loss, z if loss == "multinomial" else z[:, 0], yb)
        step = balancer.step(J, lost, tasks)
        offset = 0
        for view in out[1:]:
            view[...] = step.shared[offset:offset + view.size].reshape(view.shape)
            offset += view.size
        gE = out[0]
        gE.fill(0.0)
        own = M @ (d_h * proj * gate * (1.0 - gate))  # (k, width): each task's row
        gE[tasks] = own * step.scale[:, None]
    return grad


class TaskGatedMLP(NetworkEstimator):
    """Task embedding through a sigmoid gates a dense projection of the features."""

    label = "task-gated network"

    def __init__(self, *, width: int = 32, hidden: int = 16, epochs: int = 20, batch_size: int = 32,
                 optimizer: str = "adam", lr: float = 1e-3, seed: int = 0,
                 progress: Progress | None = None, weight_decay: float = 0.0,
                 loss: str = "squared_error", tune: bool = False, max_epochs: int = 300,
                 patience: int = 10, balancing: str = "sum", balance_lr: float = 1e-2) -> None:
        self.width = width
        self.balancing = balancing
        self.balance_lr = balance_lr
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.seed = seed
        self.progress = progress
        self.weight_decay = weight_decay
        self._training(loss, tune, max_epochs, patience)

    def gates(self) -> np.ndarray:
        """Each task's gate, sigmoid(embedding) (tasks x width): what the task lets through,
        so tasks with similar gates are treated alike (the report maps them in 2-D)."""
        with torch.no_grad():
            return torch.sigmoid(self.net_.embed.weight).numpy().copy()

    def task_relations(self) -> TaskRelations:
        return TaskRelations("embedding", self.gates(), "the gated network's task gates",
                             "gated")

    def _train(self, X, y, t, n_tasks, hp, stop) -> None:
        self.net_ = GatedNet(X.shape[1], n_tasks, int(self.width * hp["width"]),
                             int(self.hidden * hp["width"]), self.seed,
                             n_outputs(self.loss, y))
        flat = FlatParams.adopt(list(self.net_.parameters()))
        if self.balancing == "sum":
            grad, after = gated_gradient(flat, X, t, y, self.loss), stop
        else:
            balancer = Balancer(self.balancing, n_tasks, self.seed, self.balance_lr)
            grad = gated_balanced_gradient(flat, X, t, y, self.loss, balancer)

            def after(epoch: int) -> bool:
                balancer.end_epoch()
                self.balance_ = balancer.record()
                return bool(stop(epoch)) if stop is not None else False
        train_flat(grad, flat, X.shape[0],
                   OptimizerSpec(self.optimizer, hp["lr"], weight_decay=hp["weight_decay"]),
                   hp["epochs"], self.batch_size_, self.seed, "task-gated",
                   None if stop else self.progress, after)

    def _predict(self, X, t) -> np.ndarray:
        with torch.no_grad():
            return mean_of(self.loss,
                           self.net_(torch.from_numpy(X), torch.from_numpy(t)).numpy())

    def _predict_population(self, X) -> np.ndarray:
        """The mean of the known tasks' gates lets the features through."""
        with torch.no_grad():
            gate = torch.sigmoid(self.net_.embed.weight).mean(0)
            return mean_of(self.loss, self.net_.gated(torch.from_numpy(X), gate).numpy())

    def _state(self):
        return self.net_.state_dict()

    def _set_state(self, state):
        n_tasks, width = state["embed.weight"].shape  # sizes from the weights (a search may
        hidden = state["hidden.weight"].shape[0]  # have widened them)
        self.net_ = GatedNet(state["project.weight"].shape[1], n_tasks, width, hidden,
                             outputs=state["out.weight"].shape[0])
        self.net_.load_state_dict(state)
