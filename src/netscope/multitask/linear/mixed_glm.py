"""Mixed-effects logistic and Poisson regression (random intercept and slopes per task),
by the Laplace approximation as lme4's glmer computes it: first with nAGQ = 0 (the fixed
effects at the joint mode), then, from there, nAGQ = 1 (the fixed effects optimized with
the covariance on the Laplace deviance; glmer's default).

eta = D beta + Z b_t,  b_t = L u_t,  u_t ~ N(0, I),  Sigma = L L' (no residual variance)

For a covariance factor L(theta), penalized iteratively reweighted least squares (PIRLS)
finds the joint mode of (beta, u): each step is the linear mixed model's penalized weighted
least-squares problem, with working weights W = dmu/deta and working response
z = eta + (y - mu) / W, solved from per-task weighted grams exactly as ``mixed.py`` does
(batched q x q Cholesky factors). The Laplace deviance at the mode,

    sum_i d(y_i, mu_i) + sum_t |u_t|^2 + sum_t log det(I + L' Z_t' W_t Z_t L),

is minimized over theta by L-BFGS (stage 2: over theta and beta, the u-modes found at fixed
beta). Its gradient is exact and cheap: PIRLS runs to
convergence without gradients, then one more Newton step from the (detached) mode is taken
with autograd on; a Newton map's derivative with respect to its starting point vanishes at
its fixed point, so that one step carries the mode's full derivative in theta.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

ETA_MAX = 30.0


@dataclass
class GlmmData:
    D: torch.Tensor  # (n, p) fixed design (constant first)
    y: torch.Tensor  # (n,)
    t: torch.Tensor  # (n,) task index
    zpos: torch.Tensor  # random columns' positions inside D
    n_tasks: int
    loss: str  # "log_loss" or "poisson"
    offset: torch.Tensor | None = None  # (n,) added to every linear predictor (boosted trees)


def inverse_link(loss: str, eta: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(eta) if loss == "log_loss" else torch.exp(eta)


def unit_deviance(loss: str, y: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """Each row's deviance on the linear predictor (binomial: 2 x log loss)."""
    if loss == "log_loss":
        return 2 * (torch.nn.functional.softplus(eta) - y * eta)
    mu = torch.exp(eta)
    logy = torch.where(y > 0, torch.log(torch.where(y > 0, y, torch.ones_like(y))), 0.0)
    return 2 * (torch.where(y > 0, y * (logy - eta), torch.zeros_like(y)) - (y - mu))


def _grams(data: GlmmData, w: torch.Tensor, z: torch.Tensor):
    """Per-task D'WD (T, p, p), D'Wz (T, p)."""
    Dw = data.D * w[:, None]
    T, p = data.n_tasks, data.D.shape[1]
    G = torch.zeros(T, p, p, dtype=data.D.dtype).index_add_(
        0, data.t, Dw[:, :, None] * data.D[:, None, :])
    g = torch.zeros(T, p, dtype=data.D.dtype).index_add_(0, data.t, Dw * z[:, None])
    return G, g


def _solve(L: torch.Tensor, G: torch.Tensor, g: torch.Tensor, zpos: torch.Tensor):
    """The penalized weighted least-squares mode for weighted grams: beta, u (T, r) with
    b = L u, and log det(I + L'Z'WZL) summed over tasks."""
    ZZ, ZD, Zy = G[:, zpos][:, :, zpos], G[:, zpos, :], g[:, zpos]
    S = torch.eye(L.shape[1], dtype=L.dtype) + L.T @ ZZ @ L
    C = torch.linalg.cholesky(S)
    U = L.T @ ZD
    u = L.T @ Zy[..., None]
    Wm = torch.linalg.solve_triangular(C, torch.cat([U, u], -1), upper=False)
    Wd, wy = Wm[..., :-1], Wm[..., -1:]
    XVX = (G - Wd.mT @ Wd).sum(0)
    XVy = (g[..., None] - Wd.mT @ wy).sum(0)[:, 0]
    beta = torch.linalg.solve(XVX, XVy)
    uhat = torch.linalg.solve_triangular(C.mT, wy - Wd @ beta[:, None], upper=True)[..., 0]
    logdet = 2 * torch.log(torch.diagonal(C, dim1=-2, dim2=-1)).sum()
    return beta, uhat, logdet


def _eta(data: GlmmData, L: torch.Tensor, beta: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    b = u @ L.T  # (T, q)
    eta = data.D @ beta + (data.D[:, data.zpos] * b[data.t]).sum(1)
    if data.offset is not None:
        eta = eta + data.offset
    return eta.clamp(-ETA_MAX, ETA_MAX)


def _newton(data: GlmmData, L: torch.Tensor, beta: torch.Tensor, u: torch.Tensor):
    """One PIRLS step from (beta, u): the new mode estimate and its log determinant."""
    eta = _eta(data, L, beta, u)
    mu = inverse_link(data.loss, eta)
    w = (mu * (1 - mu) if data.loss == "log_loss" else mu).clamp_min(1e-10)
    z = eta + (data.y - mu) / w
    G, g = _grams(data, w, z if data.offset is None else z - data.offset)
    return _solve(L, G, g, data.zpos)


def penalized_deviance(data: GlmmData, L, beta, u) -> torch.Tensor:
    return unit_deviance(data.loss, data.y, _eta(data, L, beta, u)).sum() + (u * u).sum()


def pirls(data: GlmmData, L: torch.Tensor, beta: torch.Tensor, u: torch.Tensor,
          max_iter: int = 60, tol: float = 1e-10):
    """The joint mode of (beta, u) for a fixed L (no gradients), step-halved Newton."""
    with torch.no_grad():
        current = penalized_deviance(data, L, beta, u)
        for _ in range(max_iter):
            new_beta, new_u, _ = _newton(data, L, beta, u)
            value = penalized_deviance(data, L, new_beta, new_u)
            halvings = 0
            while not value <= current + 1e-12 * abs(float(current)) and halvings < 30:
                new_beta, new_u = (beta + new_beta) / 2, (u + new_u) / 2
                value = penalized_deviance(data, L, new_beta, new_u)
                halvings += 1
            change = max(float((new_beta - beta).abs().max()), float((new_u - u).abs().max()))
            beta, u, previous, current = new_beta, new_u, current, value
            if change < 1e-9 or abs(float(previous - current)) <= tol * max(abs(float(current)),
                                                                          1.0):
                break
    return beta, u


def laplace(data: GlmmData, L: torch.Tensor, start):
    """Laplace deviance at L (differentiable in L) and the mode (for the next warm start)."""
    beta0, u0 = pirls(data, L.detach(), *start)
    beta, u, _ = _newton(data, L, beta0, u0)  # carries d(mode)/d(theta) exactly
    return _deviance_at(data, L, beta, u), (beta0, u0), beta, u


def _newton_u(data: GlmmData, L: torch.Tensor, beta: torch.Tensor, u: torch.Tensor):
    """One Newton step for the tasks' u at fixed beta (independent per task)."""
    eta = _eta(data, L, beta, u)
    mu = inverse_link(data.loss, eta)
    w = (mu * (1 - mu) if data.loss == "log_loss" else mu).clamp_min(1e-10)
    Z = data.D[:, data.zpos]
    fixed = data.D @ beta if data.offset is None else data.D @ beta + data.offset
    r = (eta + (data.y - mu) / w - fixed) * w  # W (z - D beta - offset)
    q = len(data.zpos)
    ZZ = torch.zeros(data.n_tasks, q, q, dtype=L.dtype).index_add_(
        0, data.t, (Z * w[:, None])[:, :, None] * Z[:, None, :])
    Zr = torch.zeros(data.n_tasks, q, dtype=L.dtype).index_add_(0, data.t, Z * r[:, None])
    S = torch.eye(L.shape[1], dtype=L.dtype) + L.T @ ZZ @ L
    return torch.linalg.solve(S, (L.T @ Zr[..., None]))[..., 0]


def pirls_u(data: GlmmData, L, beta, u, max_iter: int = 60, tol: float = 1e-10):
    """The tasks' modes u at fixed (L, beta), step-halved Newton, no gradients."""
    with torch.no_grad():
        current = penalized_deviance(data, L, beta, u)
        for _ in range(max_iter):
            new = _newton_u(data, L, beta, u)
            value = penalized_deviance(data, L, beta, new)
            halvings = 0
            while not value <= current + 1e-12 * abs(float(current)) and halvings < 30:
                new = (u + new) / 2
                value = penalized_deviance(data, L, beta, new)
                halvings += 1
            change = float((new - u).abs().max())
            u, previous, current = new, current, value
            if change < 1e-9 or abs(float(previous - current)) <= tol * max(abs(float(current)),
                                                                          1.0):
                break
    return u


def laplace_beta(data: GlmmData, L: torch.Tensor, beta: torch.Tensor, u_start: torch.Tensor):
    """Laplace deviance as a function of (L, beta), lme4's nAGQ = 1 objective: the tasks'
    modes at fixed beta, one differentiable Newton step from them, the deviance there."""
    u0 = pirls_u(data, L.detach(), beta.detach(), u_start)
    u = _newton_u(data, L, beta, u0)
    return _deviance_at(data, L, beta, u), u0


def _deviance_at(data: GlmmData, L, beta, u) -> torch.Tensor:
    eta = _eta(data, L, beta, u)
    mu = inverse_link(data.loss, eta)
    w = (mu * (1 - mu) if data.loss == "log_loss" else mu).clamp_min(1e-10)
    Z = data.D[:, data.zpos]
    q = len(data.zpos)
    ZZ = torch.zeros(data.n_tasks, q, q, dtype=L.dtype).index_add_(
        0, data.t, (Z * w[:, None])[:, :, None] * Z[:, None, :])
    S = torch.eye(L.shape[1], dtype=L.dtype) + L.T @ ZZ @ L
    return unit_deviance(data.loss, data.y, eta).sum() + (u * u).sum() + torch.logdet(S).sum()


def start_mode(data: GlmmData, r: int):
    """beta at the pooled GLM's intercept only (the mean's link; 0 beside an offset),
    u = 0."""
    if data.offset is not None:
        return (torch.zeros(data.D.shape[1], dtype=data.D.dtype),
                torch.zeros(data.n_tasks, r, dtype=data.D.dtype))
    mean = float(data.y.mean())
    p = data.D.shape[1]
    beta = torch.zeros(p, dtype=data.D.dtype)
    if data.loss == "log_loss":
        m = min(max(mean, 1e-3), 1 - 1e-3)
        beta[0] = math.log(m / (1 - m))
    else:
        beta[0] = math.log(max(mean, 1e-3))
    return beta, torch.zeros(data.n_tasks, r, dtype=data.D.dtype)


def make_data(D: np.ndarray, y: np.ndarray, t: np.ndarray, zpos: np.ndarray, n_tasks: int,
              loss: str, offset: np.ndarray | None = None) -> GlmmData:
    as_t = torch.from_numpy
    return GlmmData(as_t(np.ascontiguousarray(D)), as_t(y.astype(np.float64)),
                    as_t(t.astype(np.int64)), as_t(zpos.astype(np.int64)), n_tasks, loss,
                    None if offset is None else as_t(np.asarray(offset, np.float64)))
