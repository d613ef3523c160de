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
from netscope.multitask.balancing.balancer import Balancer
from netscope.multitask.base import Progress
from netscope.multitask.linear.glm import check_loss, mean_of
from netscope.multitask.networks.flat_train import output_loss
from netscope.multitask.networks.optim import OptimizerSpec, StackedOptimizer
from netscope.multitask.networks.pooled import PooledMLP
from netscope.multitask.networks.stacked import BatchPlan, batch_plan
from netscope.multitask.networks.tuned import NETWORK_LOSSES, EarlyStopping, NetworkEstimator

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
    if head_w.dim() == h.dim():  # (..., K, width): one output per class -> (..., B, K)
        return h @ head_w.transpose(-1, -2) + head_b.unsqueeze(-2)
    return (h * head_w.unsqueeze(-2)).sum(-1) + head_b.unsqueeze(-1)


def trunk_grads(p: dict, Z, head_w, head_b, y, mask, start: int,
                loss: str = "squared_error") -> dict:
    """Per-task gradients of each task's mean loss on its padded batch (and, as ``loss``,
    that mean loss: the rows of the Jacobian a balancing strategy combines).

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
    count = mask.sum(1)[:, None]
    if loss == "multinomial":  # heads (k, K, width): softmax log loss, NumPy arrays
        pred = h @ head_w.swapaxes(-1, -2) + head_b[:, None, :]  # (k, B, K)
        P = np.exp(pred - pred.max(-1, keepdims=True))
        P /= P.sum(-1, keepdims=True)
        onehot = np.eye(head_w.shape[1])[y.astype(np.int64)]
        share = mask / (count + (count == 0))
        r = (P - onehot) * share[..., None]
        lost = -np.log(np.clip((P * onehot).sum(-1), 1e-300, None))
        grads = {"hw": r.swapaxes(-1, -2) @ h, "hb": r.sum(1)}
        d_h = r @ head_w
    else:
        pred = (h * head_w[..., None, :]).sum(-1) + head_b[..., None]
        share = mask / (count + (count == 0))
        if loss == "squared_error":
            r = 2 * (pred - y) * share  # dLoss/dpred
        else:  # log loss on log-odds, Poisson loss on log-rates: mean - y
            r = (mean_of(loss, pred) - y) * share
        lost = output_loss(loss, pred, y)
        grads = {"hw": (r[..., None] * h).sum(1), "hb": r.sum(1)}
        d_h = r[..., None] * head_w[..., None, :]
    for i, layer in reversed(list(enumerate(range(start, 2)))):
        d_a = d_h * (pre[i] > 0)
        grads[f"W{layer}"] = acts[i].swapaxes(-1, -2) @ d_a
        grads[f"b{layer}"] = d_a.sum(1)
        d_h = d_a @ p[f"W{layer}"].T
    grads["loss"] = (lost * share).sum(1)  # each task's mean loss on its batch
    return grads


def frozen_input(p: dict[str, torch.Tensor], X: torch.Tensor, start: int) -> torch.Tensor:
    """The output of the frozen layers below ``start``, computed once per stage."""
    h = X
    for layer in range(start):
        h = torch.relu(h @ p[f"W{layer}"] + p[f"b{layer}"])
    return h


class StageStopping:
    """Early stopping stage by stage: each stage gets its own watcher; the run's best loss
    and state are the last stage's, its epochs one per stage."""

    def __init__(self, make) -> None:
        self.make, self.epochs, self.best_loss, self.best_state = make, [], float("inf"), None

    def stage(self) -> EarlyStopping:
        return self.make()

    def done(self, watch: EarlyStopping) -> None:
        self.epochs.append(watch.best_epoch)
        self.best_loss, self.best_state = watch.best_loss, watch.best_state

    @property
    def best_epoch(self) -> tuple[int, ...]:
        return tuple(self.epochs)


class SharedTrunkMTL(NetworkEstimator):
    """Two shared hidden layers (from the pooled MLP) and a linear head per task."""

    label = "shared trunk"
    # the course's stage rates times these; the shared layers take the sum of the tasks'
    # steps (the course) or their mean (with thousands of tasks a sum is thousands of steps)
    grid = {"stage_lr_scale": (3, 10), "shared_reduce": ("sum", "mean")}
    decay_alternative = None  # the trunk keeps the pooled model's weight decay
    stage_epochs_cap = 50  # a tuned stage trains at most this many epochs (or max_epochs)

    def __init__(self, *, method: str = "accumulate", stage_epochs: tuple[int, ...] = (10, 10, 10),
                 stage_lr: tuple[float, ...] = (1e-3, 1e-4, 1e-5), batch_size: int = 32,
                 optimizer: str = "adam", shared_reduce: str = "sum",
                 pooled_epochs: int = 20, seed: int = 0,
                 progress: Progress | None = None, weight_decay: float = 0.0,
                 loss: str = "squared_error", tune: bool = False, max_epochs: int = 300,
                 patience: int = 10, balancing: str = "sum", balance_lr: float = 1e-2) -> None:
        self.method = method
        self.balancing = balancing
        self.balance_lr = balance_lr
        self.stage_epochs = stage_epochs
        self.stage_lr = stage_lr
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.shared_reduce = shared_reduce
        self.pooled_epochs = pooled_epochs
        self.seed = seed
        self.progress = progress
        self.weight_decay = weight_decay
        self._training(loss, tune, max_epochs, patience)

    def fit(self, X, y, tasks, fitted=None, pooled: PooledMLP | None = None) -> SharedTrunkMTL:
        """Fit; ``pooled`` (or ``fitted["pooled-mlp"]``) is a PooledMLP already fit on these
        rows to start from (else one is fit)."""
        if self.method not in METHODS:
            raise NetscopeError(f"method must be one of {METHODS}, got {self.method!r}.")
        if self.shared_reduce not in ("sum", "mean"):
            raise NetscopeError(
                f"shared_reduce must be 'sum' or 'mean', got {self.shared_reduce!r}."
            )
        check_loss(self.loss, self.label, NETWORK_LOSSES)
        if len(self.stage_epochs) != 3 or len(self.stage_lr) != 3:
            raise NetscopeError("stage_epochs and stage_lr need three values (one per stage).")
        if self.balancing != "sum" and self.method != "accumulate":
            raise NetscopeError(f"balancing {self.balancing!r} needs method 'accumulate': "
                                f"with 'random' one task's batch makes each update, so there "
                                f"are no gradients to balance.")
        self._pooled = pooled or (fitted or {}).get("pooled-mlp")
        return super().fit(X, y, tasks)

    def _start(self, X, y, t, n_tasks) -> None:
        """Trunk and heads from the pooled MLP (given, or fit here once on these rows)."""
        if self._pooled is None:
            self._pooled = PooledMLP(epochs=self.pooled_epochs, seed=self.seed,
                                     progress=self.progress, weight_decay=self.weight_decay,
                                     loss=self.loss).fit(X, y, t)
        net = self._pooled.net_
        if len(net) != 5:
            raise NetscopeError("the pooled model must have exactly two hidden layers.")
        self.trunk_ = {"W0": net[0].weight.detach().T.clone(), "b0": net[0].bias.detach().clone(),
                       "W1": net[2].weight.detach().T.clone(), "b1": net[2].bias.detach().clone()}
        w, b = net[4].weight.detach(), net[4].bias.detach()
        if w.shape[0] == 1:  # one output: heads (T, width), (T,)
            self.head_w_, self.head_b_ = w[0].repeat(n_tasks, 1), b.repeat(n_tasks)
        else:  # one output per class: heads (T, K, width), (T, K)
            self.head_w_, self.head_b_ = w.repeat(n_tasks, 1, 1), b.repeat(n_tasks, 1)

    def _fit(self, X, y, t, n_tasks) -> None:
        try:
            super()._fit(X, y, t, n_tasks)
        finally:
            self._pooled = None  # keep no reference after fitting

    def _hp(self) -> dict:
        return {"stage_lr_scale": 1, "weight_decay": self.weight_decay, "epochs": None,
                "shared_reduce": self.shared_reduce}

    def _search_space(self) -> list[dict]:
        """With one task per update (``random``) a sum is a mean: search the rates only."""
        space = super()._search_space()
        return [c for c in space if self.method == "accumulate" or c["shared_reduce"] == "sum"]

    def _stopper(self, X, y, t, kind, n_tasks):
        return StageStopping(lambda: self._stage_stop(X, y, t, kind))

    def _stage_stop(self, X, y, t, kind) -> EarlyStopping:
        return super()._stopper(X, y, t, kind, None)

    def _train(self, X, y, t, n_tasks, hp, stop) -> None:
        """The three stages; with ``stop``, each stage runs until its own early stop (at
        most ``max_epochs``) and keeps its best epoch before the next stage starts."""
        self._start(X, y, t, n_tasks)
        Xt = torch.from_numpy(X)
        rng = np.random.default_rng(self.seed)
        balancer = None if self.balancing == "sum" else \
            Balancer(self.balancing, n_tasks, self.seed, self.balance_lr)
        for stage, (epochs, lr) in enumerate(zip(self.stage_epochs, self.stage_lr,
                                                 strict=True), start=1):
            spec = OptimizerSpec(self.optimizer, lr * hp["stage_lr_scale"],
                                 weight_decay=hp["weight_decay"])
            start = FIRST_TRAINED[stage]
            Z = frozen_input(self.trunk_, Xt, start).numpy()
            update = _Update(self, Z, y, StackedOptimizer(spec, n_tasks), TRAINABLE[stage],
                             start, hp["shared_reduce"], balancer)
            if stop is None:
                self._run(batch_plan(t, n_tasks, self.batch_size, epochs, rng), update, stage,
                          rng)
            elif epochs > 0:  # a stage the settings skip stays skipped
                watch = stop.stage()
                most = min(self.max_epochs, self.stage_epochs_cap)
                plan = iter(BatchPlan(t, n_tasks, self.batch_size, most, rng).by_epoch())
                for epoch in range(1, most + 1):
                    self._run(next(plan), update, stage, rng)
                    if watch(epoch):
                        break
                self._set_state(watch.best_state)
                stop.done(watch)
            if self.progress and stop is None:
                self.progress(f"shared-trunk ({self.method}): stage {stage}/3 done")
        if not all(torch.isfinite(v).all() for v in (*self.trunk_.values(), self.head_w_)):
            raise FloatingPointError("shared-trunk training diverged; lower stage_lr.")
        if balancer is not None:
            self.balance_ = balancer.record()

    def _run(self, plan, update, stage: int, rng) -> None:
        # With the trunk frozen (stage 1) tasks cannot interact, so any interleaving of
        # their mini-batches gives the same weights: the batched path is then exact.
        with np.errstate(over="ignore", invalid="ignore"):  # divergence: checked after
            if self.method == "accumulate" or not TRAINABLE[stage]:
                _accumulate(plan, update)
                if update.balancer is not None:
                    update.balancer.end_epoch()
            else:
                _random(plan, update, rng)

    def _predict(self, X, t) -> np.ndarray:
        with torch.no_grad():
            tt = torch.from_numpy(t)
            Xt = torch.from_numpy(X).unsqueeze(1)
            pred = trunk_forward(self.trunk_, Xt, self.head_w_[tt], self.head_b_[tt])
            return mean_of(self.loss, pred[:, 0].numpy())

    def _predict_population(self, X) -> np.ndarray:
        """The mean head on the shared trunk (the average of the tasks' linear heads)."""
        with torch.no_grad():
            Xt = torch.from_numpy(X).unsqueeze(1)
            n = X.shape[0]
            w, b = self.head_w_.mean(0, keepdim=True), self.head_b_.mean(0, keepdim=True)
            pred = trunk_forward(self.trunk_, Xt, w.expand(n, *w.shape[1:]),
                                 b.expand(n, *b.shape[1:]))
            return mean_of(self.loss, pred[:, 0].numpy())

    def _state(self):
        return {**self.trunk_, "head_w": self.head_w_, "head_b": self.head_b_}

    def _set_state(self, state):
        self.trunk_ = {k: state[k].to(torch.float64) for k in SHARED}
        self.head_w_, self.head_b_ = state["head_w"], state["head_b"]


def _accumulate(plan: np.ndarray, update: _Update) -> None:
    """Every task with a mini-batch left at a step, at the same weights, then all updates."""
    for step in plan:
        mask = step >= 0
        tasks = np.flatnonzero(mask.any(1))
        update(tasks, np.maximum(step[tasks], 0), mask[tasks].astype(np.float64))


def _random(plan: np.ndarray, update: _Update, rng: np.random.Generator) -> None:
    """One task's mini-batch at a time, in random order, each applied at once."""
    pairs = [(s, task) for s in range(plan.shape[0]) for task in range(plan.shape[1])
             if plan[s, task, 0] >= 0]
    for j in rng.permutation(len(pairs)):
        s, task = pairs[j]
        rows = plan[s, task][plan[s, task] >= 0]
        update(np.array([task]), rows[None], np.ones((1, rows.size)))


class _Update:
    """One update for some tasks on their (padded) mini-batches: per-task gradients, then
    each task's own optimizer step over its head and the shared layers being trained (one
    flat vector per task); shared layers receive the sum (or mean) of the tasks' steps.
    With a ``balancer`` the shared layers instead take one step, by their own optimizer, on
    the strategy's combination of the tasks' gradients (the Jacobian's rows, all from one
    batched pass), and each head its gradient times the strategy's scale for its task.
    NumPy views of the model's tensors: at one task per step (``random``), torch's
    per-operation cost would be most of the time."""

    def __init__(self, model: SharedTrunkMTL, Z: np.ndarray, y: np.ndarray,
                 opt: StackedOptimizer, trainable: tuple[str, ...], start: int,
                 reduce: str = "sum", balancer: Balancer | None = None) -> None:
        self.Z, self.y, self.opt, self.start = Z, y, opt, start
        self.trunk = {n: v.numpy() for n, v in model.trunk_.items()}  # views: moves trunk_
        self.head_w, self.head_b = model.head_w_.numpy(), model.head_b_.numpy()
        self.trainable = trainable
        self.decay = bool(opt.spec.weight_decay)
        self.reduce = np.sum if reduce == "sum" else np.mean
        self.loss = model.loss
        self.balancer = balancer
        self.shared_opt = StackedOptimizer(opt.spec, 1)

    def __call__(self, tasks: np.ndarray, idx: np.ndarray, mask: np.ndarray) -> None:
        g = trunk_grads(self.trunk, self.Z[idx], self.head_w[tasks], self.head_b[tasks],
                        self.y[idx], mask, self.start, self.loss)
        k = len(tasks)
        if self.balancer is not None and self.trainable:
            self._balanced(g, tasks)
            return
        grad = np.concatenate([g[n].reshape(k, -1) for n in ("hw", "hb", *self.trainable)], 1)
        self.opt.tick(tasks)
        d = self.opt.delta("all", grad, tasks, self._values(tasks) if self.decay else None)
        offset = self._heads(d, tasks)
        for n in self.trainable:
            shape = self.trunk[n].shape
            size = self.trunk[n].size
            self.trunk[n] -= self.reduce(d[:, offset:offset + size].reshape(k, *shape), axis=0)
            offset += size

    def _heads(self, d: np.ndarray, tasks: np.ndarray) -> int:
        """Apply the heads' steps (the first columns of ``d``); returns where they end."""
        k = len(tasks)
        hw, hb = self.head_w[0].size, self.head_b[0].size
        self.head_w[tasks] -= d[:, :hw].reshape(k, *self.head_w.shape[1:])
        self.head_b[tasks] -= d[:, hw:hw + hb].reshape(k, *self.head_b.shape[1:])
        return hw + hb

    def _balanced(self, g: dict, tasks: np.ndarray) -> None:
        k = len(tasks)
        J = np.concatenate([g[n].reshape(k, -1) for n in self.trainable], 1)
        step = self.balancer.step(J, g["loss"], tasks)
        heads = np.concatenate([g["hw"].reshape(k, -1), g["hb"].reshape(k, -1)], 1)
        self.opt.tick(tasks)
        values = np.concatenate([self.head_w[tasks].reshape(k, -1),
                                 self.head_b[tasks].reshape(k, -1)], 1) if self.decay else None
        self._heads(self.opt.delta("heads", heads * step.scale[:, None], tasks, values), tasks)
        one = np.zeros(1, np.int64)
        self.shared_opt.tick(one)
        flat = np.concatenate([self.trunk[n].ravel() for n in self.trainable])[None]
        d = self.shared_opt.delta("shared", step.shared[None], one,
                                  flat if self.decay else None)[0]
        offset = 0
        for n in self.trainable:
            size = self.trunk[n].size
            self.trunk[n] -= d[offset:offset + size].reshape(self.trunk[n].shape)
            offset += size

    def _values(self, tasks: np.ndarray) -> np.ndarray:
        """The tasks' current numbers in gradient order (for weight decay)."""
        k = len(tasks)
        shared = [np.broadcast_to(self.trunk[n].ravel(), (k, self.trunk[n].size))
                  for n in self.trainable]
        return np.concatenate([self.head_w[tasks].reshape(k, -1),
                               self.head_b[tasks].reshape(k, -1), *shared], 1)
