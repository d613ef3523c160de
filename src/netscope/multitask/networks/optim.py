"""Per-task optimizers on stacked parameters.

Adam and RMSprop are element-wise, so one optimizer state tensor with a leading task axis,
updated only at the tasks that took a step, is exactly equal to T separate optimizers.
Shared parameters get one state per task too (each task's optimizer proposes its own step
for them), which is what "one optimizer per task" means when tasks share layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from netscope.errors import NetscopeError

RULES = ("adam", "rmsprop", "sgd")


@dataclass(frozen=True)
class OptimizerSpec:
    """Hyper-parameters, with Keras's defaults (the course used Keras)."""

    rule: str = "adam"
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    rho: float = 0.9
    eps: float = 1e-7
    weight_decay: float = 0.0  # L2: adds weight_decay * w to each gradient (torch's convention)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise NetscopeError(f"optimizer must be one of {RULES}, got {self.rule!r}.")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise NetscopeError(f"learning rate must be a positive number, got {self.lr}.")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise NetscopeError(f"weight decay must be >= 0, got {self.weight_decay}.")

    def scaled(self, factor: float) -> OptimizerSpec:
        return OptimizerSpec(self.rule, self.lr * factor, self.beta1, self.beta2, self.rho,
                             self.eps, self.weight_decay)

    def torch(self, params, fused: bool = False) -> torch.optim.Optimizer:
        """The equivalent single-task torch optimizer (``fused``: one kernel per step)."""
        if self.rule == "adam":
            return torch.optim.Adam(params, lr=self.lr, betas=(self.beta1, self.beta2),
                                    eps=self.eps, weight_decay=self.weight_decay,
                                    fused=fused or None)
        if self.rule == "rmsprop":
            return torch.optim.RMSprop(params, lr=self.lr, alpha=self.rho, eps=self.eps,
                                       weight_decay=self.weight_decay)
        return torch.optim.SGD(params, lr=self.lr, weight_decay=self.weight_decay)


class StackedOptimizer:
    """State for ``n_tasks`` optimizers over parameters of any shape; steps only named tasks.

    NumPy arrays throughout (torch tensors convert without copying): the networks it trains
    are tiny, and NumPy's per-call cost is a fraction of torch's. One task (``n_tasks=1``)
    is a plain optimizer over a flat vector.
    """

    def __init__(self, spec: OptimizerSpec, n_tasks: int) -> None:
        self.spec = spec
        self.n_tasks = n_tasks
        self.steps = np.zeros(n_tasks)
        self._m: dict[str, np.ndarray] = {}
        self._v: dict[str, np.ndarray] = {}

    def tick(self, tasks: np.ndarray) -> None:
        """Advance the step counters of ``tasks`` (once per update, before ``delta`` calls)."""
        self.steps[tasks] += 1

    def delta(self, key: str, grad: np.ndarray, tasks: np.ndarray,
              param: np.ndarray | None = None) -> np.ndarray:
        """Per-task steps (to subtract) for ``grad`` of shape (len(tasks), *param_shape);
        ``param`` (the current values, same shape or broadcastable) enables weight decay.
        ``tasks`` are distinct and sorted, so as many as ``n_tasks`` means all of them."""
        s = self.spec
        if s.weight_decay and param is not None:
            grad = grad + s.weight_decay * param
        if s.rule == "sgd":
            return s.lr * grad
        if key not in self._v:
            self._v[key] = np.zeros((self.n_tasks, *grad.shape[1:]))
            if s.rule == "adam":
                self._m[key] = np.zeros((self.n_tasks, *grad.shape[1:]))
        shape = (-1,) + (1,) * (grad.ndim - 1)
        every = len(tasks) == self.n_tasks  # all tasks step: update state in place
        v = self._v[key] if every else self._v[key][tasks]
        decay = s.rho if s.rule == "rmsprop" else s.beta2  # the squared gradients' average
        v *= decay
        v += (1 - decay) * grad * grad
        if not every:
            self._v[key][tasks] = v
        if s.rule == "rmsprop":
            return s.lr * grad / (np.sqrt(v) + s.eps)
        m = self._m[key] if every else self._m[key][tasks]
        m += (1 - s.beta1) * (grad - m)  # torch's lerp
        if not every:
            self._m[key][tasks] = m
        step = self.steps[tasks]
        bc1 = (1 - s.beta1**step).reshape(shape)
        bc2 = (1 - s.beta2**step).reshape(shape)
        return (s.lr / bc1) * m / (np.sqrt(v) / np.sqrt(bc2) + s.eps)
