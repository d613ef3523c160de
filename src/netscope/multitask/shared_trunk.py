"""Shared-trunk multi-task network: the pooled MLP's hidden layers shared, one head per task.

Heads start as copies of the pooled model's output layer. Training is staged, as in the
course: stage 1 trains only the heads, stage 2 also the second shared layer, stage 3 both
shared layers, each stage with a smaller learning rate (``stage_lr``) and fresh optimizers.
Every task has its own optimizer state, for its head and for the shared layers it updates.

Two methods:
- ``accumulate``: at each step every task's gradient is computed on its own mini-batch
  before any weight moves; then every task's optimizer applies its step (shared layers
  receive the sum, or the mean with ``shared_reduce="mean"``, of the tasks' steps);
- ``random``: per-task mini-batches in random order, each applied at once (fit-on-batch).
"""

from __future__ import annotations

import numpy as np
import torch

from netscope.errors import NetscopeError
from netscope.multitask.base import Progress, TaskEstimator
from netscope.multitask.flat_train import FlatOptimizer
from netscope.multitask.optim import OptimizerSpec, StackedOptimizer
from netscope.multitask.pooled import PooledMLP
from netscope.multitask.stacked import batch_plan

SHARED = ("W0", "b0", "W1", "b1")
TRAINABLE = {1: (), 2: ("W1", "b1"), 3: SHARED}  # shared layers trained in each stage
FIRST_TRAINED = {1: 2, 2: 1, 3: 0}  # the layer where each stage's trainable part begins
METHODS = ("accumulate", "random")


def trunk_forward(p: dict[str, torch.Tensor], Z: torch.Tensor, head_w: torch.Tensor,
                  head_b: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Prediction for rows Z (..., B, width) that enter the network at layer ``start``
    (0: features, 1: first hidden layer's output, 2: second's), with their heads."""
    h = Z
    for layer in range(start, 2):
        h = torch.relu(h @ p[f"W{layer}"] + p[f"b{layer}"].unsqueeze(-2))
    return (h * head_w.unsqueeze(-2)).sum(-1) + head_b.unsqueeze(-1)


def trunk_grads(p: dict, Z, head_w, head_b, y, mask, start: int) -> dict:
    """Per-task gradients of each task's mean squared error on its padded batch.

    Z (k, B, width) enters at layer ``start``; heads (k, 16), (k,); y and mask (k, B).
    Hand-written backpropagation (checked against autograd in the tests): the networks are
    tiny, so autograd's per-call overhead would dominate every step. Written with operations
    that torch tensors and NumPy arrays share, so either can be passed.
    """
    acts = [Z]
    pre = []
    for layer in range(start, 2):
        a = acts[-1] @ p[f"W{layer}"] + p[f"b{layer}"][..., None, :]
        pre.append(a)
        acts.append(a * (a > 0))
    h = acts[-1]
    pred = (h * head_w[..., None, :]).sum(-1) + head_b[..., None]
    count = mask.sum(1)[:, None]
    r = 2 * (pred - y) * mask / (count + (count == 0))  # dLoss/dpred
    grads = {"hw": (r[..., None] * h).sum(1), "hb": r.sum(1)}
    d_h = r[..., None] * head_w[..., None, :]
    for i, layer in reversed(list(enumerate(range(start, 2)))):
        d_a = d_h * (pre[i] > 0)
        grads[f"W{layer}"] = acts[i].swapaxes(-1, -2) @ d_a
        grads[f"b{layer}"] = d_a.sum(1)
        d_h = d_a @ p[f"W{layer}"].T
    return grads


def frozen_input(p: dict[str, torch.Tensor], X: torch.Tensor, start: int) -> torch.Tensor:
    """The output of the frozen layers below ``start``, computed once per stage."""
    h = X
    for layer in range(start):
        h = torch.relu(h @ p[f"W{layer}"] + p[f"b{layer}"])
    return h


class SharedTrunkMTL(TaskEstimator):
    """Two shared hidden layers (from the pooled MLP) and a linear head per task."""

    family = "shared-trunk"

    def __init__(self, method: str = "accumulate", stage_epochs: tuple[int, ...] = (10, 10, 10),
                 stage_lr: tuple[float, ...] = (1e-3, 1e-4, 1e-5), batch_size: int = 32,
                 optimizer: str = "adam", shared_reduce: str = "sum",
                 pooled_epochs: int = 20, seed: int = 0,
                 progress: Progress | None = None, weight_decay: float = 0.0) -> None:
        self.method = method
        self.stage_epochs = stage_epochs
        self.stage_lr = stage_lr
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.shared_reduce = shared_reduce
        self.pooled_epochs = pooled_epochs
        self.seed = seed
        self.progress = progress
        self.weight_decay = weight_decay

    def fit(self, X, y, tasks, pooled: PooledMLP | None = None) -> SharedTrunkMTL:
        """Fit; ``pooled`` is an already fitted PooledMLP to start from (else one is fit)."""
        if self.method not in METHODS:
            raise NetscopeError(f"method must be one of {METHODS}, got {self.method!r}.")
        if self.shared_reduce not in ("sum", "mean"):
            raise NetscopeError(
                f"shared_reduce must be 'sum' or 'mean', got {self.shared_reduce!r}."
            )
        if len(self.stage_epochs) != 3 or len(self.stage_lr) != 3:
            raise NetscopeError("stage_epochs and stage_lr need three values (one per stage).")
        self._pooled = pooled
        return super().fit(X, y, tasks)

    def _start(self, X, y, t, n_tasks) -> None:
        pooled, self._pooled = self._pooled, None  # keep no reference after fitting
        if pooled is None:
            pooled = PooledMLP(epochs=self.pooled_epochs, seed=self.seed,
                               progress=self.progress,
                               weight_decay=self.weight_decay).fit(X, y, t)
        if len(pooled.hidden) != 2:
            raise NetscopeError("the pooled model must have exactly two hidden layers.")
        net = pooled.net_
        self.trunk_ = {"W0": net[0].weight.detach().T.clone(), "b0": net[0].bias.detach().clone(),
                       "W1": net[2].weight.detach().T.clone(), "b1": net[2].bias.detach().clone()}
        self.head_w_ = net[4].weight.detach()[0].repeat(n_tasks, 1)
        self.head_b_ = net[4].bias.detach().repeat(n_tasks)

    def _fit(self, X, y, t, n_tasks) -> None:
        self._start(X, y, t, n_tasks)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        rng = np.random.default_rng(self.seed)
        for stage, (epochs, lr) in enumerate(zip(self.stage_epochs, self.stage_lr,
                                                 strict=True), start=1):
            opt = StackedOptimizer(OptimizerSpec(self.optimizer, lr,
                                                 weight_decay=self.weight_decay), n_tasks)
            plan = batch_plan(t, n_tasks, self.batch_size, epochs, rng)
            start = FIRST_TRAINED[stage]
            Z = frozen_input(self.trunk_, Xt, start)
            # With the trunk frozen (stage 1) tasks cannot interact, so any interleaving of
            # their mini-batches gives the same weights: the batched path is then exact.
            batched = self.method == "accumulate" or not TRAINABLE[stage]
            run = self._accumulate if batched else self._random
            run(plan, Z, yt, opt, TRAINABLE[stage], start, rng)
            if self.progress:
                self.progress(f"shared-trunk ({self.method}): stage {stage}/3 done")
        if not all(torch.isfinite(v).all() for v in (*self.trunk_.values(), self.head_w_)):
            raise FloatingPointError("shared-trunk training diverged; lower stage_lr.")

    def _step(self, tasks: torch.Tensor, Zb, yb, mask, opt: StackedOptimizer,
              trainable: tuple[str, ...], start: int) -> None:
        """One update: per-task gradients for the given tasks, then each task's step.

        All of a task's trainable numbers form one flat vector, so the optimizer runs once.
        """
        grads = trunk_grads(self.trunk_, Zb, self.head_w_[tasks], self.head_b_[tasks], yb, mask,
                            start)
        names = ("hw", "hb", *trainable)
        k = tasks.numel()
        flat = torch.cat([grads[n].reshape(k, -1) for n in names], dim=1)
        values = None
        if self.weight_decay:
            current = {"hw": self.head_w_[tasks], "hb": self.head_b_[tasks],
                       **{n: self.trunk_[n].expand(k, *self.trunk_[n].shape) for n in trainable}}
            values = torch.cat([current[n].reshape(k, -1) for n in names], dim=1)
        opt.tick(tasks)
        delta = opt.delta("all", flat, tasks, values)
        offset = 0
        for n in names:
            shape = grads[n].shape
            size = shape[1:].numel()
            d = delta[:, offset:offset + size].reshape(shape)
            offset += size
            if n == "hw":
                self.head_w_[tasks] -= d
            elif n == "hb":
                self.head_b_[tasks] -= d
            else:
                self.trunk_[n] -= d.sum(0) if self.shared_reduce == "sum" else d.mean(0)

    def _accumulate(self, plan, X, y, opt, trainable, start, rng) -> None:
        for step in plan:
            idx = torch.from_numpy(step)
            mask = idx >= 0
            tasks = torch.nonzero(mask.any(1)).squeeze(1)
            idx, mask = idx[tasks].clamp(min=0), mask[tasks].to(X.dtype)
            self._step(tasks, X[idx], y[idx], mask, opt, trainable, start)

    def _random(self, plan, X, y, opt, trainable, start, rng) -> None:
        """One task's mini-batch at a time, each applied at once (in NumPy: at one task per
        step, torch's per-operation cost would be most of the time)."""
        pairs = [(s, task) for s in range(plan.shape[0]) for task in range(plan.shape[1])
                 if plan[s, task, 0] >= 0]
        step = _TaskStep(self, X.numpy(), y.numpy(), opt.spec, trainable, start)
        with np.errstate(over="ignore", invalid="ignore"):  # divergence: checked in _fit
            for j in rng.permutation(len(pairs)):
                s, task = pairs[j]
                step(task, plan[s, task][plan[s, task] >= 0])

    def _predict(self, X, t) -> np.ndarray:
        with torch.no_grad():
            tt = torch.from_numpy(t)
            Xt = torch.from_numpy(X).unsqueeze(1)
            pred = trunk_forward(self.trunk_, Xt, self.head_w_[tt], self.head_b_[tt])
            return pred.squeeze(-1).numpy()

    def _state(self):
        return {**self.trunk_, "head_w": self.head_w_, "head_b": self.head_b_}

    def _set_state(self, state):
        self.trunk_ = {k: state[k].to(torch.float64) for k in SHARED}
        self.head_w_, self.head_b_ = state["head_w"], state["head_b"]


class _TaskStep:
    """One task's update on its rows: its gradient, its own optimizer (over its head and the
    shared layers being trained, as one flat vector), applied to NumPy views of the model."""

    def __init__(self, model: SharedTrunkMTL, Z: np.ndarray, y: np.ndarray,
                 spec: OptimizerSpec, trainable: tuple[str, ...], start: int) -> None:
        self.Z, self.y, self.spec, self.start = Z, y, spec, start
        self.trunk = {n: v.numpy() for n, v in model.trunk_.items()}  # views: moves trunk_
        self.head_w, self.head_b = model.head_w_.numpy(), model.head_b_.numpy()
        self.trainable = trainable
        self.decay = bool(model.weight_decay)
        self.size = self.head_w.shape[1] + 1 + sum(self.trunk[n].size for n in trainable)
        self.optimizers: dict[int, FlatOptimizer] = {}

    def __call__(self, task: int, rows: np.ndarray) -> None:
        one = slice(task, task + 1)
        g = trunk_grads(self.trunk, self.Z[rows][None], self.head_w[one], self.head_b[one],
                        self.y[rows][None], np.ones((1, rows.size)), self.start)
        grad = np.concatenate([g[n].ravel() for n in ("hw", "hb", *self.trainable)])
        values = self._values(task) if self.decay else None
        if task not in self.optimizers:
            self.optimizers[task] = FlatOptimizer(self.spec, self.size)
        d = self.optimizers[task].delta(grad, values)
        width = self.head_w.shape[1]
        self.head_w[task] -= d[:width]
        self.head_b[task] -= d[width]
        offset = width + 1
        for n in self.trainable:
            size = self.trunk[n].size
            self.trunk[n] -= d[offset:offset + size].reshape(self.trunk[n].shape)
            offset += size

    def _values(self, task: int) -> np.ndarray:
        """The task's current numbers in gradient order (for weight decay)."""
        return np.concatenate([self.head_w[task], self.head_b[task:task + 1],
                               *(self.trunk[n].ravel() for n in self.trainable)])
