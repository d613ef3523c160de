"""Loss weightings that torchjd lacks: each gives the tasks' losses weights for a step, and
learns from the step's losses (and gradients, for GradNorm) what the next weights are.

Their learned numbers (log-variances, GradNorm's weights) move by their own Adam at rate
``lr`` (the networks' stage rates go down to 1e-5, at which they would not move).
"""

from __future__ import annotations

import numpy as np

from netscope.multitask.networks.optim import OptimizerSpec, StackedOptimizer


class LossWeighting:
    """Weights for the ``tasks`` present in a step (their losses, and the rows of the
    Jacobian of the shared parameters, given)."""

    def __init__(self, n_tasks: int, seed: int = 0, lr: float = 1e-2) -> None:
        self.n_tasks, self.rng, self.lr = n_tasks, np.random.default_rng(seed), lr

    def weights(self, tasks: np.ndarray, losses: np.ndarray, J: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def end_epoch(self) -> None:
        """Called after each epoch (DWA reads the epoch's losses)."""

    def _adam(self) -> StackedOptimizer:
        return StackedOptimizer(OptimizerSpec("adam", self.lr, eps=1e-8), 1)


class Uncertainty(LossWeighting):
    """Kendall et al. (2018), as LibMTL writes it for every kind of loss: the loss is
    sum_t L_t / (2 exp(s_t)) + s_t / 2, with s_t = log sigma_t^2 learned. Its minimum in s_t
    is s_t = log L_t, so each weight tends to 1 / (2 L_t): the inverse of the task's noise
    variance."""

    def __init__(self, n_tasks: int, seed: int = 0, lr: float = 1e-2) -> None:
        super().__init__(n_tasks, seed, lr)
        self.log_var, self.opt = np.full(n_tasks, -0.5), self._adam()  # LibMTL starts at -0.5

    def weights(self, tasks, losses, J) -> np.ndarray:
        w = 0.5 * np.exp(-self.log_var[tasks])
        grad = np.zeros(self.n_tasks)
        grad[tasks] = 0.5 - w * losses  # d/ds of L / (2 e^s) + s / 2
        self.opt.tick(np.zeros(1, np.int64))
        self.log_var -= self.opt.delta("s", grad[None], np.zeros(1, np.int64))[0]
        return w

    def current(self) -> np.ndarray:
        return 0.5 * np.exp(-self.log_var)


class DynamicWeightAverage(LossWeighting):
    """Liu et al. (2019): w_t = T softmax(r / 2), r_t = L_t(e-1) / L_t(e-2) over epoch-mean
    losses; weights 1 for the first two epochs."""

    temperature = 2.0

    def __init__(self, n_tasks: int, seed: int = 0, lr: float = 1e-2) -> None:
        super().__init__(n_tasks, seed, lr)
        self.total, self.count = np.zeros(n_tasks), np.zeros(n_tasks)
        self.history: list[np.ndarray] = []
        self.w = np.ones(n_tasks)

    def weights(self, tasks, losses, J) -> np.ndarray:
        self.total[tasks] += losses
        self.count[tasks] += 1
        return self.w[tasks]

    def end_epoch(self) -> None:
        seen = self.count > 0
        last = np.where(seen, self.total / np.maximum(self.count, 1), np.nan)
        if self.history:  # a task without rows this epoch keeps its last loss
            last = np.where(seen, last, self.history[-1])
        self.history.append(last)
        self.total[:], self.count[:] = 0.0, 0.0
        if len(self.history) >= 2:
            r = self.history[-1] / np.maximum(self.history[-2], 1e-12)
            r = np.where(np.isfinite(r), r, 1.0)
            e = np.exp((r - r.max()) / self.temperature)
            self.w = self.n_tasks * e / e.sum()


class GradNorm(LossWeighting):
    """Chen et al. (2018): weights w_t (summing to T) learned so that each task's weighted
    gradient norm G_t = w_t |g_t| tends to mean(G) r_t^alpha, r_t its loss ratio L_t / L_t(0)
    over the mean ratio; the target is held fixed, so d|G_t - target_t| / dw_t =
    sign(G_t - target_t) |g_t|. Norms over all shared parameters (LibMTL's choice; the paper
    took the last shared layer to save a backward pass, which the batched Jacobian makes
    free)."""

    alpha = 1.5

    def __init__(self, n_tasks: int, seed: int = 0, lr: float = 1e-2) -> None:
        super().__init__(n_tasks, seed, lr)
        self.w, self.first, self.opt = np.ones(n_tasks), np.full(n_tasks, np.nan), self._adam()

    def weights(self, tasks, losses, J) -> np.ndarray:
        w = self.w[tasks].copy()
        new = np.isnan(self.first[tasks])
        self.first[tasks[new]] = losses[new]
        norms = np.linalg.norm(J, axis=1)
        G = w * norms
        ratio = losses / np.maximum(self.first[tasks], 1e-12)
        target = G.mean() * (ratio / ratio.mean()) ** self.alpha
        grad = np.zeros(self.n_tasks)
        grad[tasks] = np.sign(G - target) * norms
        self.opt.tick(np.zeros(1, np.int64))
        self.w = np.maximum(self.w - self.opt.delta("w", grad[None], np.zeros(1, np.int64))[0],
                            1e-6)
        self.w *= self.n_tasks / self.w.sum()
        return w


class RandomLossWeighting(LossWeighting):
    """Lin et al. (2022): each step, the softmax of standard normal draws, times the number
    of tasks in the step (so the weights sum as the plain sum's do)."""

    def weights(self, tasks, losses, J) -> np.ndarray:
        z = self.rng.standard_normal(len(tasks))
        e = np.exp(z - z.max())
        return len(tasks) * e / e.sum()
