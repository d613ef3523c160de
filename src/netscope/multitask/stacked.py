"""Stacked per-task layers and mini-batch plans, so T small networks train as one tensor program.

A plan is an int array (steps, T, B) of row indices, -1 where a task has no row: at every
step each task sees its own next mini-batch, exactly as T separate `fit` loops would.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def glorot(n_tasks: int | None, fan_in: int, fan_out: int, gen: torch.Generator) -> torch.Tensor:
    """Keras's default Dense initializer (uniform Glorot), one matrix per task when stacked."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    shape = (fan_in, fan_out) if n_tasks is None else (n_tasks, fan_in, fan_out)
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * limit


def init_stacked_mlp(n_tasks: int, sizes: list[int], seed: int) -> dict[str, torch.Tensor]:
    """Weights ``W{l}`` (T, in, out) and zero biases ``b{l}`` (T, out) for every task."""
    gen = torch.Generator().manual_seed(seed)
    params = {}
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        params[f"W{layer}"] = glorot(n_tasks, fan_in, fan_out, gen)
        params[f"b{layer}"] = torch.zeros(n_tasks, fan_out, dtype=torch.float64)
    return params


def stacked_mlp_forward(params: dict[str, torch.Tensor], X: torch.Tensor) -> torch.Tensor:
    """ReLU MLP on padded per-task batches X (T, B, in) -> (T, B)."""
    n_layers = len(params) // 2
    h = X
    for layer in range(n_layers):
        h = torch.baddbmm(params[f"b{layer}"].unsqueeze(1), h, params[f"W{layer}"])
        if layer < n_layers - 1:
            h = torch.relu(h)
    return h.squeeze(-1)


def batch_plan(task: np.ndarray, n_tasks: int, batch_size: int, epochs: int,
               rng: np.random.Generator) -> np.ndarray:
    """Per-task shuffled mini-batches for every epoch, aligned step by step across tasks."""
    rows = [np.flatnonzero(task == t) for t in range(n_tasks)]
    batch_size = min(batch_size, max(r.size for r in rows))  # no all-padding columns
    steps_per_epoch = max(math.ceil(r.size / batch_size) for r in rows)
    plan = np.full((epochs, steps_per_epoch * batch_size, n_tasks), -1, dtype=np.int64)
    for e in range(epochs):
        for t, r in enumerate(rows):
            plan[e, : r.size, t] = rng.permutation(r)
    plan = plan.reshape(epochs, steps_per_epoch, batch_size, n_tasks).transpose(0, 1, 3, 2)
    return plan.reshape(epochs * steps_per_epoch, n_tasks, batch_size)


def gather_batch(plan_step: np.ndarray, X: torch.Tensor, y: torch.Tensor):
    """Padded (T, B, d) features, (T, B) targets and mask for one plan step."""
    idx = torch.as_tensor(plan_step)
    mask = idx >= 0
    safe = idx.clamp(min=0)
    return X[safe], y[safe], mask
