"""One small MLP per task, trained all at once as stacked tensors.

The course looped over tasks in Python (minutes for 139 schools, hours for 190 subjects).
Here every task's network is a slice of stacked weights; each step takes one mini-batch from
every task that still has one and updates with that task's own optimizer state, which is
exactly what T separate training loops do (the tests compare it with such a loop:
``tests/multitask/reference.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from netscope.multitask.base import Progress
from netscope.multitask.linear.glm import mean_of
from netscope.multitask.networks.flat_train import n_outputs
from netscope.multitask.networks.optim import OptimizerSpec, StackedOptimizer
from netscope.multitask.networks.stacked import (
    BatchPlan,
    gather_batch,
    init_stacked_mlp,
    stacked_mlp_forward,
)
from netscope.multitask.networks.tuned import MIN_DELTA, NetworkEstimator


def row_loss(loss: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each row's loss on the network's output (a value, a log-odds, a log-rate, or one
    output per class for class codes y)."""
    if loss == "multinomial":
        return torch.logsumexp(z, -1) - z.gather(-1, y.long().unsqueeze(-1)).squeeze(-1)
    if loss == "log_loss":
        return torch.nn.functional.softplus(z) - y * z
    if loss == "poisson":
        return torch.exp(z.clamp(max=30.0)) - y * z
    return (z - y) ** 2


def train_stacked(params: dict[str, torch.Tensor], X: torch.Tensor, y: torch.Tensor,
                  plan: BatchPlan | np.ndarray, spec: OptimizerSpec,
                  progress: Progress | None = None, loss: str = "squared_error",
                  after_epoch: Callable[[int, dict], bool] | None = None
                  ) -> dict[str, torch.Tensor]:
    """Per-task mini-batch training of stacked MLP weights along ``plan`` (steps, T, B).
    ``after_epoch(epoch, weights)`` (early stopping; needs a ``BatchPlan``) ends training
    when it returns True."""
    params = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    opt = StackedOptimizer(spec, params["W0"].shape[0])
    every = max(1, len(plan) // 10)
    per_epoch = getattr(plan, "steps_per_epoch", None)
    for s, step in enumerate(plan):
        Xb, yb, mask = gather_batch(step, X, y)
        count = mask.sum(1)
        active = torch.nonzero(count > 0).squeeze(1)
        pred = stacked_mlp_forward(params, Xb)
        per_task = (row_loss(loss, pred, yb) * mask).sum(1) / count.clamp(min=1)
        grads = torch.autograd.grad(per_task.sum(), list(params.values()))
        act = active.numpy()
        opt.tick(act)
        with torch.no_grad():
            for (k, p), g in zip(params.items(), grads, strict=True):
                p[active] -= torch.from_numpy(opt.delta(k, g[active].numpy(), act,
                                                        p[active].detach().numpy()))
        if progress and (s + 1) % every == 0:
            progress(f"per-task MLPs: step {s + 1}/{len(plan)}")
        if after_epoch is not None and (s + 1) % per_epoch == 0 and \
                after_epoch((s + 1) // per_epoch, {k: v.detach() for k, v in params.items()}):
            break
    return {k: v.detach() for k, v in params.items()}


class PerTaskStopping:
    """Early stopping for independent networks: each task keeps the weights of its own
    best epoch on its own validation rows (a task without validation rows keeps its last
    weights); training ends when the validation loss of all tasks together has not improved
    for ``patience`` epochs."""

    def __init__(self, model: PerTaskMLP, X, y, t, kind, n_tasks: int, patience: int) -> None:
        self.model, self.X, self.y, self.t, self.kind = model, X, y, t, kind
        self.count = np.bincount(t, minlength=n_tasks).astype(np.float64)
        self.best = np.full(n_tasks, np.inf)
        self.epoch_of = np.zeros(n_tasks, np.int64)
        self.patience, self.best_state, self.history = patience, None, []
        self.overall, self.overall_epoch = float("inf"), 0

    def __call__(self, epoch: int, weights: dict) -> bool:
        self.model.params_ = weights
        loss = self.kind.unit_loss(self.y, self.model._predict(self.X, self.t))
        per_task = np.bincount(self.t, weights=loss, minlength=len(self.best)) / \
            np.maximum(self.count, 1)
        better = (per_task < self.best * (1 - MIN_DELTA)) | (self.count == 0) | \
            ~np.isfinite(self.best)
        self.best[better] = per_task[better]
        self.epoch_of[better] = epoch
        if self.best_state is None:
            self.best_state = {k: v.clone() for k, v in weights.items()}
        else:
            idx = torch.from_numpy(np.flatnonzero(better))
            for k, v in weights.items():
                self.best_state[k][idx] = v[idx]
        seen = self.count > 0
        now = float((per_task[seen] * self.count[seen]).sum() / self.count[seen].sum())
        self.history.append(now)
        if now < self.overall * (1 - MIN_DELTA):
            self.overall, self.overall_epoch = now, epoch
        # all tasks together, as plain early stopping would (with thousands of tasks some
        # task always finds a new best by chance, so waiting for every task never ends)
        return epoch - self.overall_epoch >= self.patience

    @property
    def best_loss(self) -> float:
        seen = self.count > 0
        return float((self.best[seen] * self.count[seen]).sum() / self.count[seen].sum())

    @property
    def best_epoch(self) -> int:
        """The median of the tasks' best epochs."""
        return int(np.median(self.epoch_of[self.count > 0]))


class PerTaskMLP(NetworkEstimator):
    """A separate ReLU MLP per task (course: Dense 30-15-1, RMSprop, 5 epochs, batch 32)."""

    label = "per-task MLP"
    grid = {"lr": (3, 10)}  # independent small networks: larger rates, stronger decay
    decay_alternative = 1e-2

    def __init__(self, *, hidden: tuple[int, ...] = (30, 15), epochs: int = 5, batch_size: int = 32,
                 optimizer: str = "rmsprop", lr: float = 1e-3, seed: int = 0,
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

    def _stopper(self, X, y, t, kind, n_tasks):
        return PerTaskStopping(self, X, y, t, kind, n_tasks, self.patience)

    def _train(self, X, y, t, n_tasks, hp, stop) -> None:
        sizes = [X.shape[1], *(int(h * hp["width"]) for h in self.hidden),
                 n_outputs(self.loss, y)]
        init = init_stacked_mlp(n_tasks, sizes, self.seed)
        plan = BatchPlan(t, n_tasks, self.batch_size, hp["epochs"],
                         np.random.default_rng(self.seed))
        spec = OptimizerSpec(self.optimizer, hp["lr"], weight_decay=hp["weight_decay"])
        self.params_ = train_stacked(init, torch.from_numpy(X), torch.from_numpy(y), plan, spec,
                                     None if stop else self.progress, self.loss, stop)

    def _predict(self, X, t, chunk: int = 4096) -> np.ndarray:
        """Each row through its task's network; rows in chunks so memory stays bounded."""
        outputs = self.params_[f"b{len(self.params_) // 2 - 1}"].shape[1]
        out = np.empty((X.shape[0], outputs) if outputs > 1 else X.shape[0])
        with torch.no_grad():
            for start in range(0, X.shape[0], chunk):
                rows = slice(start, start + chunk)
                Xt = torch.from_numpy(X[rows]).unsqueeze(1)  # (n, 1, d): a row per "task slot"
                sliced = {k: v[torch.from_numpy(t[rows])] for k, v in self.params_.items()}
                out[rows] = stacked_mlp_forward(sliced, Xt)[:, 0].numpy()
        return mean_of(self.loss, out)

    def _state(self):
        return self.params_

    def _set_state(self, state):
        self.params_ = {k: v.to(torch.float64) for k, v in state.items()}
