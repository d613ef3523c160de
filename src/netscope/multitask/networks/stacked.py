"""Stacked per-task layers and mini-batch plans, so T small networks train as one tensor program.

A plan is an int array (steps, T, B) of row indices, -1 where a task has no row: at every
step each task sees its own next mini-batch, exactly as T separate `fit` loops would.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

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


class BatchPlan:
    """Per-task shuffled mini-batches for every epoch, aligned step by step across tasks:
    ``len`` steps of (tasks, batch) row indices (-1: padding), made one epoch at a time as
    they are iterated, so memory and each uninterruptible array operation stay one epoch's
    size however many epochs are asked for (100,000 epochs of the survey would otherwise
    be a 2.3 GB array filled in one call)."""

    def __init__(self, task: np.ndarray, n_tasks: int, batch_size: int, epochs: int,
                 rng: np.random.Generator) -> None:
        order = np.argsort(task, kind="stable")  # each task's rows in one pass, not T scans
        bounds = np.searchsorted(task[order], np.arange(n_tasks + 1))
        self.rows = [order[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self.batch = min(batch_size, max(r.size for r in self.rows))  # no all-padding column
        self.steps_per_epoch = max(math.ceil(r.size / self.batch) for r in self.rows)
        self.epochs, self.rng = epochs, rng

    def __len__(self) -> int:
        return self.epochs * self.steps_per_epoch

    def __iter__(self) -> Iterator[np.ndarray]:
        for _ in range(self.epochs):
            yield from self._epoch()

    def by_epoch(self) -> Iterator[np.ndarray]:
        """One (steps, tasks, batch) array per epoch."""
        for _ in range(self.epochs):
            yield self._epoch()

    def _epoch(self) -> np.ndarray:
        """(steps_per_epoch, tasks, batch) for one epoch, one permutation per task."""
        block = np.full((self.steps_per_epoch * self.batch, len(self.rows)), -1, np.int64)
        for t, r in enumerate(self.rows):
            block[: r.size, t] = self.rng.permutation(r)
        return block.reshape(self.steps_per_epoch, self.batch, -1).transpose(0, 2, 1)


def batch_plan(task: np.ndarray, n_tasks: int, batch_size: int, epochs: int,
               rng: np.random.Generator) -> np.ndarray:
    """``BatchPlan`` as one (steps, tasks, batch) array, for code that needs every step at
    once (the shared trunk's random order over all steps of a stage)."""
    plan = BatchPlan(task, n_tasks, batch_size, epochs, rng)
    if epochs == 0:
        return np.zeros((0, n_tasks, plan.batch), np.int64)
    return np.concatenate([plan._epoch() for _ in range(epochs)])


def gather_batch(plan_step: np.ndarray, X: torch.Tensor, y: torch.Tensor):
    """Padded (T, B, d) features, (T, B) targets and mask for one plan step."""
    idx = torch.as_tensor(plan_step)
    mask = idx >= 0
    safe = idx.clamp(min=0)
    return X[safe], y[safe], mask
