"""The MMoE paper's synthetic data (Ma et al. 2018, section 3.2): two regression targets
whose relatedness is one number.

Two orthogonal unit vectors u1, u2 in R^d give w1 = c u1 and w2 = c (rho u1 +
sqrt(1 - rho^2) u2), so the cosine of the targets' linear parts is exactly rho; for x ~
N(0, I), y_k = w_k.x + sum_i sin(alpha_i w_k.x + beta_i) + noise (SD 0.01). The paper calls
alpha_i, beta_i given parameters without listing them; as Google Research's generator of this
data, alpha_i = i and beta_i = (i - 1)^2 for i = 1..m (m = 10), shared by both targets."""

from __future__ import annotations

import numpy as np

from netscope.data.targets_table import TargetsData


def mmoe_synthetic(n: int = 10_000, rho: float = 0.5, d: int = 100, c: float = 1.0,
                   m: int = 10, seed: int = 0) -> TargetsData:
    if not -1 <= rho <= 1:
        raise ValueError(f"rho must be in [-1, 1], got {rho}.")
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(d, 2)))  # two orthonormal columns
    w1 = c * u[:, 0]
    w2 = c * (rho * u[:, 0] + np.sqrt(1 - rho**2) * u[:, 1])
    alpha, beta = np.arange(1.0, m + 1), np.arange(m, dtype=np.float64) ** 2
    X = rng.normal(size=(n, d))
    Y = np.empty((n, 2))
    for k, w in enumerate((w1, w2)):
        z = X @ w
        Y[:, k] = z + np.sin(alpha[None, :] * z[:, None] + beta[None, :]).sum(1) \
            + 0.01 * rng.normal(size=n)
    return TargetsData(X, Y, ["y1", "y2"], ("regression", "regression"), ((), ()),
                       [f"x{i}" for i in range(d)], f"MMoE synthetic (rho {rho:g})",
                       {"rho": f"cosine of the targets' linear parts: {rho:g}"})


def linear_cosine(rho: float, d: int = 100, seed: int = 0) -> float:
    """The cosine of w1 and w2 as generated (equals rho: a check of the construction)."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(d, 2)))
    w1, w2 = u[:, 0], rho * u[:, 0] + np.sqrt(1 - rho**2) * u[:, 1]
    return float(w1 @ w2 / np.linalg.norm(w1) / np.linalg.norm(w2))
