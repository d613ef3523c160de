"""One fit's balancing: from a step's Jacobian of the shared parameters (a row per task
present, computed in one batched pass by the network) to the shared update, and how much
each task's own parameters take of their gradient.

torchjd's aggregators run on the Gramian J J^T where they are Gramian weightings (a k x k
matrix instead of k x p: the weights come from it, the update is weights @ J), on J itself
otherwise. The record says how often the tasks' gradients conflicted (some pair with a
negative inner product) and the mean weight each task received.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from importlib import import_module

import numpy as np
import torch

from netscope.multitask.balancing.registry import BALANCINGS, check_balancings, check_installed


@dataclass(frozen=True)
class Step:
    shared: np.ndarray  # (p,) the shared parameters' combined gradient
    scale: np.ndarray  # (k,) what each present task's own parameters take of their gradient
    weights: np.ndarray  # (k,) the weights of the rows (the update is weights @ J where linear)
    conflict: bool


def _build(path: str, options: dict):
    module, _, name = path.partition(":")
    return getattr(import_module(module), name)(**options)


class Balancer:
    """Stateful for one fit (DWA's losses, GradNorm's weights, Nash-MTL's last weights)."""

    def __init__(self, key: str, n_tasks: int, seed: int = 0, lr: float = 1e-2) -> None:
        check_balancings([key])
        check_installed(key)
        self.spec = BALANCINGS[key]
        self.key, self.n_tasks, self.seed = key, n_tasks, seed
        self._made: dict[int, object] = {}
        if self.spec.kind == "weighting":
            self.weighting = _build(self.spec.make, {"n_tasks": n_tasks, "seed": seed,
                                                     "lr": lr})
        elif self.spec.kind == "aggregator":
            self._agg(2)  # built now, so a missing solver fails before training
        self.steps = self.conflicts = 0
        self.weight_sum, self.weight_count = np.zeros(n_tasks), np.zeros(n_tasks)

    def _agg(self, k: int):
        key = k if self.spec.per_count else 0
        if key not in self._made:
            options = {**self.spec.options, **({"n_tasks": k} if self.spec.per_count else {})}
            self._made[key] = _build(self.spec.make, options)
        return self._made[key]

    def step(self, J: np.ndarray, losses: np.ndarray, tasks: np.ndarray) -> Step:
        """The update for one step: ``J`` (k, p) the present tasks' gradients of the shared
        parameters, ``losses`` (k,) their losses, ``tasks`` (k,) their positions."""
        k = J.shape[0]
        G = J @ J.T
        conflict = bool(k > 1 and (G[~np.eye(k, dtype=bool)] < 0).any())
        kind = self.spec.kind
        if kind == "weighting":
            w = np.asarray(self.weighting.weights(tasks, losses, J), np.float64)
            step = Step(w @ J, w, w, conflict)
        elif kind == "sum" or k == 1:
            step = Step(J.sum(0), np.ones(k), np.ones(k), conflict)
        else:
            step = self._aggregate(J, G, conflict)
        self.steps += 1
        self.conflicts += conflict
        self.weight_sum[tasks] += step.weights
        self.weight_count[tasks] += 1
        return step

    def _aggregate(self, J, G, conflict) -> Step:
        agg = self._agg(J.shape[0])
        with warnings.catch_warnings(), torch.random.fork_rng(enabled=self.spec.draws):
            warnings.simplefilter("ignore")  # cvxpy's notes on re-solving
            if self.spec.draws:  # GradDrop draws signs: seeded per step, the fit's own
                torch.manual_seed(self.seed * 1_000_003 + self.steps)
            if self.spec.gramian:
                w = agg(torch.from_numpy(G)).numpy().astype(np.float64)
                return Step(w @ J, np.ones(len(w)), w, conflict)
            shared = agg(torch.from_numpy(J)).numpy().astype(np.float64)
        return Step(shared, np.ones(J.shape[0]), _weights_of(J, shared), conflict)

    def end_epoch(self) -> None:
        if self.spec.kind == "weighting":
            self.weighting.end_epoch()

    def record(self) -> dict:
        """What the report shows: the share of steps whose gradients conflicted, and each
        task's mean weight (NaN where a strategy has no weights, as GradDrop)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.weight_sum / self.weight_count
        return {"balancing": self.key, "steps": self.steps,
                "conflict_share": self.conflicts / max(self.steps, 1),
                "mean_weights": mean.tolist()}


def _weights_of(J: np.ndarray, update: np.ndarray) -> np.ndarray:
    """The row weights w with w @ J = update where the update is such a combination (Nash-MTL);
    NaN where it is not (GradDrop mixes coordinates)."""
    w, *_ = np.linalg.lstsq(J.T, update, rcond=None)
    close = np.linalg.norm(w @ J - update) <= 1e-6 * max(np.linalg.norm(update), 1e-300)
    return w if close else np.full(J.shape[0], np.nan)
