"""A linear mixed-effects model, fit by REML or ML over all tasks at once.

y_t = D_t beta + Z_t b_t + e_t,  b_t ~ N(0, Sigma),  e_t ~ N(0, sigma^2 I)

``D`` is the constant and the features (the fixed effects), ``Z`` the constant and the
features that vary inside tasks (a random intercept and random slopes per task). As in
lme4, Sigma = sigma^2 L L' with L lower-triangular (or diagonal), so the profiled deviance
depends only on L and never inverts Sigma: a singular covariance is a boundary point, not a
NaN. Everything comes from per-task sufficient statistics (D_t'D_t, D_t'y_t, y_t'y_t, n_t),
so one deviance evaluation is a batch of T small q x q Cholesky factorizations; its gradient
comes from autograd and L-BFGS does the rest. Predictions use the BLUPs of b_t.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import minimize

from netscope.errors import NetscopeError
from netscope.multitask.base import Progress, TaskEstimator
from netscope.multitask.linear.glm import check_loss, mean_of
from netscope.multitask.linear.linalg import (
    covariance_to_correlation,
    independent_columns,
    within_varying,
)
from netscope.multitask.linear.mixed_glm import (
    laplace,
    laplace_beta,
    make_data,
    pirls_u,
    start_mode,
)
from netscope.multitask.linear.ridge import task_grams
from netscope.perf import blas_threads

METHODS = ("reml", "ml")
COVARIANCES = ("full", "diag", "factor1", "factor2", "factor3")


class MixedEffects(TaskEstimator):
    """Random intercept and slopes per task with a learned covariance (lme4's model)."""

    label = "mixed-effects model"

    def __init__(self, *, random: str | tuple[int, ...] = "within", cov: str = "factor1",
                 method: str = "reml", max_iter: int = 2000,
                 start: tuple[float, ...] | None = None, loss: str = "squared_error",
                 nagq: int = 1, gtol: float = 1e-7,
                 progress: Progress | None = None) -> None:
        self.random = random
        self.cov = cov
        self.method = method
        self.max_iter = max_iter
        self.start = start  # covariance parameters to start from (default: identity; ignored
        # when their number does not match: the random columns found on these rows differ)
        self.loss = loss  # squared_error (lmer), log_loss or poisson (glmer, Laplace)
        self.gtol = gtol  # L-BFGS's gradient tolerance (looser inside mixed boosting's rounds)
        self.nagq = nagq  # glmer's nAGQ: 0 (fixed effects at the joint mode) or 1 (then on
        # the Laplace deviance with the covariance, glmer's default)
        self.progress = progress

    # -- fitting ---------------------------------------------------------------------------
    def fit_offset(self, X, y, tasks, offset: np.ndarray) -> MixedEffects:
        """Fit with a known part of the linear predictor (another model's, such as boosted
        trees' log-odds) added to every row; predictions leave it out."""
        self._offset = np.asarray(offset, np.float64).reshape(-1)
        try:
            return self.fit(X, y, tasks)
        finally:
            self._offset = None

    def _fit(self, X, y, t, n_tasks) -> None:
        self._check_params(X.shape[1])
        offset = getattr(self, "_offset", None)
        if offset is not None and self.loss == "squared_error":
            y = y - offset
        D = np.hstack([np.ones((X.shape[0], 1)), X])  # constant first: kept when collinear
        fixed = independent_columns(D.T @ D)
        random = self._random_columns(D, t, n_tasks, fixed)
        G, g = task_grams(D[:, fixed], y, t, n_tasks)
        yy = np.bincount(t, weights=y * y, minlength=n_tasks)
        n = np.bincount(t, minlength=n_tasks).astype(np.float64)
        zpos = np.searchsorted(fixed, random)  # random columns' positions inside the fixed
        stats = _Stats(*(torch.from_numpy(np.ascontiguousarray(a)) for a in (G, g, yy, n)),
                       torch.from_numpy(zpos))
        q = len(random)
        theta0 = _initial_theta(q, self.cov)
        if self.start is not None and len(self.start) == theta0.size:
            theta0 = np.asarray(self.start, dtype=np.float64)
        if self.loss != "squared_error":
            self._fit_glmm(D[:, fixed], y, t, n_tasks, zpos, theta0, fixed, random, n, X,
                           offset)
            return
        # L-BFGS-B's BLAS calls between evaluations leave OpenBLAS threads spinning, which
        # starves torch's threads (10x slower on 2 cores): keep BLAS to one thread here
        with blas_threads(1):
            result = minimize(_objective(stats, q, self.cov, self.method), theta0, jac=True,
                              method="L-BFGS-B",
                              options={"maxiter": self.max_iter, "gtol": self.gtol,
                                       **({} if self.gtol < 1e-6 else {"ftol": 1e-7})})
        if not np.isfinite(result.fun):
            raise NetscopeError("mixed-effects: the REML/ML deviance is not finite; "
                                "the features may be badly scaled.")
        with torch.no_grad():
            fit = _profile(torch.from_numpy(result.x), stats, q, self.cov, self.method)
        self._store(fit, fixed, random, X.shape[1], n, result)
        self.theta_ = tuple(float(v) for v in result.x)

    def _fit_glmm(self, D, y, t, n_tasks, zpos, theta0, fixed, random, n, X,
                  offset=None) -> None:
        """Logistic or Poisson: the Laplace deviance minimized over theta (mixed_glm.py)."""
        q = len(random)
        data = make_data(D, y, t, zpos, n_tasks, self.loss, offset)
        mode = [start_mode(data, _lower(torch.from_numpy(theta0), q, self.cov).shape[1])]

        def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
            theta = np.where(np.abs(theta) < 1e-100, 0.0, theta)
            th = torch.from_numpy(theta).requires_grad_(True)
            try:
                dev, mode[0], _, _ = laplace(data, _lower(th, q, self.cov), mode[0])
            except torch.linalg.LinAlgError:
                return float("inf"), np.zeros_like(theta)
            (grad,) = torch.autograd.grad(dev, th)
            return float(dev.detach()), grad.numpy()

        with blas_threads(1):
            result = minimize(f, theta0, jac=True, method="L-BFGS-B",
                              options={"maxiter": self.max_iter, "gtol": self.gtol,
                                       "ftol": 1e-14 if self.gtol < 1e-6 else 1e-9})
        if not np.isfinite(result.fun):
            raise NetscopeError("mixed-effects: the Laplace deviance is not finite; the "
                                "features may be badly scaled.")
        L = _lower(torch.from_numpy(result.x), q, self.cov)
        with torch.no_grad():
            _, _, beta, u = laplace(data, L, mode[0])
        if self.nagq == 1:
            result, beta, u = self._stage_two(data, result.x, beta, u)
        else:
            result.x = np.concatenate([result.x, beta.numpy()])
        L = _lower(torch.from_numpy(result.x[:-beta.numel()]), q, self.cov)
        fit = {"beta": beta, "blup": u @ L.T, "cov": L @ L.T,
               "sigma2": torch.tensor(1.0, dtype=torch.float64)}
        self._store(fit, fixed, random, X.shape[1], n, result)
        self.theta_ = tuple(float(v) for v in result.x[:-beta.numel()])

    def _stage_two(self, data, theta, beta, u):
        """glmer's nAGQ = 1: theta and beta together on the Laplace deviance, the tasks'
        modes at fixed beta, started from stage one's optimum."""
        q, k = len(data.zpos), len(theta)
        state = [u]

        def f(x: np.ndarray) -> tuple[float, np.ndarray]:
            x = np.where(np.abs(x) < 1e-100, 0.0, x)
            xt = torch.from_numpy(x).requires_grad_(True)
            try:
                dev, state[0] = laplace_beta(data, _lower(xt[:k], q, self.cov), xt[k:],
                                             state[0])
            except torch.linalg.LinAlgError:
                return float("inf"), np.zeros_like(x)
            (grad,) = torch.autograd.grad(dev, xt)
            return float(dev.detach()), grad.numpy()

        with blas_threads(1):
            result = minimize(f, np.concatenate([theta, beta.numpy()]), jac=True,
                              method="L-BFGS-B",
                              options={"maxiter": self.max_iter, "gtol": self.gtol,
                                       "ftol": 1e-14 if self.gtol < 1e-6 else 1e-9})
        beta = torch.from_numpy(result.x[k:])
        L = _lower(torch.from_numpy(result.x[:k]), q, self.cov)
        u = pirls_u(data, L, beta, state[0])
        return result, beta, u

    def fit_summary(self) -> list[str]:
        return list(getattr(self, "notes_", []))

    def _chosen(self) -> dict:
        """Start from this fit's covariance parameters (same rows or a subset: close); a
        loaded model kept only the covariance, so its copy starts from the default."""
        return {"start": self.theta_} if hasattr(self, "theta_") else {}

    def _check_params(self, n_features: int) -> None:
        check_loss(self.loss, "mixed-effects")
        if self.nagq not in (0, 1):
            raise NetscopeError(f"mixed-effects: nagq must be 0 or 1, got {self.nagq!r}.")
        if self.method not in METHODS:
            raise NetscopeError(f"mixed-effects: method must be one of {METHODS}, "
                                f"got {self.method!r}.")
        if self.cov not in COVARIANCES:
            raise NetscopeError(f"mixed-effects: cov must be one of {COVARIANCES}, "
                                f"got {self.cov!r}.")
        if isinstance(self.random, str):
            if self.random not in ("within", "intercept"):
                raise NetscopeError("mixed-effects: random must be 'within', 'intercept' or "
                                    f"a tuple of feature indices, got {self.random!r}.")
        elif any(not 0 <= int(i) < n_features for i in self.random):
            raise NetscopeError(f"mixed-effects: random slope indices {tuple(self.random)} "
                                f"must lie in 0..{n_features - 1}.")

    def _random_columns(self, D, t, n_tasks, fixed) -> np.ndarray:
        """Columns of D with a random effect: the constant, plus slopes on the chosen features
        that vary inside tasks (a feature constant within every task is confounded with the
        random intercept) and are not collinear with the fixed effects."""
        if self.random == "intercept":
            chosen = np.array([0])
        elif self.random == "within":
            chosen = np.concatenate([[0], 1 + np.flatnonzero(within_varying(D[:, 1:], t,
                                                                             n_tasks))])
        else:
            chosen = np.unique(np.concatenate([[0], 1 + np.asarray(self.random, int)]))
            flat = [int(c) - 1 for c in chosen[1:]
                    if not within_varying(D[:, [c]], t, n_tasks)[0]]
            if flat:
                raise NetscopeError(f"mixed-effects: feature {flat[0]} does not vary inside any "
                                    f"task, so it cannot have a random slope.")
        return np.intersect1d(chosen, fixed)

    def _store(self, fit: dict, fixed, random, n_features: int, n, result) -> None:
        p = n_features + 1
        coef = np.zeros((len(n), p))  # on the layout [constant, features]
        coef[:, fixed] = fit["beta"].numpy()
        coef[:, random] += fit["blup"].numpy()
        self.coef_ = np.hstack([coef[:, 1:], coef[:, :1]])  # ridge's layout: features, constant
        beta = np.zeros(p)
        beta[fixed] = fit["beta"].numpy()
        self.fixed_effects_ = np.hstack([beta[1:], beta[:1]])
        self.random_columns_ = tuple(int(c) for c in random)  # 0 = intercept, k = feature k-1
        self.random_cov_ = fit["cov"].numpy()
        self.residual_var_ = float(fit["sigma2"])
        self.deviance_ = float(result.fun)
        self.converged_ = bool(result.success)
        eig = np.linalg.eigvalsh(self.random_cov_)
        # a direction with under 1/1000 of the largest SD is unsupported (lme4 flags 1e-4 on
        # its relative factor); L-BFGS only approaches such boundaries, never reaches 0
        self.cov_rank_ = int((eig > 1e-6 * max(eig.max(), 1e-300)).sum())
        q = len(random)
        self.small_tasks_ = int((n < q).sum())
        self.notes_ = self._notes(q)
        if self.progress:
            for line in self.notes_:
                self.progress(f"mixed-effects: {line}")

    def _notes(self, q: int) -> list[str]:
        how = self.method.upper() if self.loss == "squared_error" else \
            f"{'logistic' if self.loss == 'log_loss' else 'Poisson'} link, Laplace " \
            f"approximation (lme4's glmer, nAGQ = {self.nagq})"
        notes = [f"{q} random effects per task (intercept and {q - 1} slope(s)), "
                 f"{self.cov} covariance, {how}, "
                 f"{'converged' if self.converged_ else 'NOT converged (raise max_iter)'}"]
        if self.small_tasks_:
            notes.append(f"{self.small_tasks_} task(s) have fewer rows than the {q} random "
                         f"effects: their effects are estimated through the shared covariance "
                         f"(shrunk toward the fixed effects)")
        if self.cov_rank_ < q:
            notes.append(f"the random-effects covariance is singular (rank {self.cov_rank_} of "
                         f"{q}): the data do not support {q - self.cov_rank_} independent "
                         f"direction(s) of variation between tasks; the fit stays on that "
                         f"boundary (no NaN, predictions use the BLUPs)")
        return notes

    def random_correlations(self) -> np.ndarray:
        """Correlations of the random effects; 0 where an effect has no variance (not NaN)."""
        return covariance_to_correlation(self.random_cov_)

    def linear_predictor(self, X, t) -> np.ndarray:
        """Fixed plus random effects on the link scale (t: task positions; -1: none)."""
        coef = np.where((t >= 0)[:, None], self.coef_[np.maximum(t, 0)], self.fixed_effects_)
        return np.einsum("nd,nd->n", X, coef[:, :-1]) + coef[:, -1]

    def _predict(self, X, t) -> np.ndarray:
        return mean_of(self.loss, self.linear_predictor(X, t))

    def _predict_population(self, X) -> np.ndarray:
        """The fixed effects alone: a new task's random effects are at their mean, zero."""
        return mean_of(self.loss, X @ self.fixed_effects_[:-1] + self.fixed_effects_[-1])

    def _state(self):
        return {"coef": torch.from_numpy(self.coef_),
                "fixed_effects": torch.from_numpy(self.fixed_effects_),
                "random_cov": torch.from_numpy(self.random_cov_),
                "random_columns": torch.tensor(self.random_columns_, dtype=torch.int64),
                "residual_var": torch.tensor(self.residual_var_, dtype=torch.float64)}

    def _set_state(self, state):
        self.coef_ = state["coef"].numpy()
        self.fixed_effects_ = state["fixed_effects"].numpy()
        self.random_cov_ = state["random_cov"].numpy()
        self.random_columns_ = tuple(state["random_columns"].tolist())
        self.residual_var_ = float(state["residual_var"])


class _Stats:
    """Per-task sufficient statistics on the fixed design, and where Z sits inside it."""

    def __init__(self, G, g, yy, n, zpos) -> None:
        self.G, self.g, self.yy, self.n, self.zpos = G, g, yy, n, zpos
        self.ZZ = G[:, zpos][:, :, zpos]
        self.ZD = G[:, zpos, :]
        self.Zy = g[:, zpos]
        self.N = float(n.sum())
        self.p = G.shape[1]


def _factor_rank(cov: str) -> int:
    return int(cov[len("factor"):]) if cov.startswith("factor") else 0


def _initial_theta(q: int, cov: str) -> np.ndarray:
    """L = identity (relative to sigma): lme4's starting point on standardized data; for a
    factor structure, small equal loadings beside the identity."""
    if cov == "diag":
        return np.ones(q)
    if r := _factor_rank(cov):
        return np.concatenate([np.full(q * r, 0.1), np.ones(q)])
    rows, cols = np.tril_indices(q)
    return (rows == cols).astype(np.float64)


def _lower(theta: torch.Tensor, q: int, cov: str) -> torch.Tensor:
    """The factor with Sigma = sigma^2 L L': lower-triangular (full), diagonal, or
    [loadings | diagonal] (q x (r + q)) for a rank-r factor structure plus unique variances."""
    if cov == "diag":
        return torch.diag(theta)
    if r := _factor_rank(cov):
        return torch.cat([theta[:q * r].reshape(q, r), torch.diag(theta[q * r:])], 1)
    L = theta.new_zeros(q, q)
    rows, cols = torch.tril_indices(q, q)
    return L.index_put((rows, cols), theta)


def _profile(theta: torch.Tensor, s: _Stats, q: int, cov: str, method: str) -> dict:
    """Profiled deviance at L(theta), with beta, sigma^2, Sigma and the BLUPs."""
    L = _lower(theta, q, cov)
    S = torch.eye(L.shape[1], dtype=theta.dtype) + L.T @ s.ZZ @ L  # I + L'Z'ZL per task
    C = torch.linalg.cholesky(S)
    U = L.T @ s.ZD  # (T, q, p)
    u = (L.T @ s.Zy[..., None])  # (T, q, 1)
    W = torch.linalg.solve_triangular(C, torch.cat([U, u], -1), upper=False)
    Wd, wy = W[..., :-1], W[..., -1:]
    XVX = (s.G - Wd.mT @ Wd).sum(0)
    XVy = (s.g[..., None] - Wd.mT @ wy).sum(0)[:, 0]
    yVy = (s.yy - (wy * wy).sum((-2, -1))).sum()
    R = torch.linalg.cholesky(XVX)
    beta = torch.cholesky_solve(XVy[:, None], R)[:, 0]
    r2 = (yVy - XVy @ beta).clamp_min(1e-300)
    logdet = 2 * torch.log(torch.diagonal(C, dim1=-2, dim2=-1)).sum()
    if method == "reml":
        dof = s.N - s.p
        dev = logdet + 2 * torch.log(torch.diagonal(R)).sum() + \
            dof * (1 + torch.log(2 * math.pi * r2 / dof))
    else:
        dof = s.N
        dev = logdet + dof * (1 + torch.log(2 * math.pi * r2 / dof))
    sigma2 = r2 / dof
    resid = wy - Wd @ beta[:, None]  # C^-1 L'Z'(y - D beta)
    blup = (L @ torch.linalg.solve_triangular(C.mT, resid, upper=True))[..., 0]
    return {"deviance": dev, "beta": beta, "sigma2": sigma2, "cov": sigma2 * L @ L.T,
            "blup": blup}


def _objective(stats: _Stats, q: int, cov: str, method: str):
    def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
        # L-BFGS drives unsupported effects toward 0 through subnormal numbers, which are
        # ~100x slower in every later product: treat them as the exact zeros they stand for
        theta = np.where(np.abs(theta) < 1e-100, 0.0, theta)
        th = torch.from_numpy(theta).requires_grad_(True)
        try:
            dev = _profile(th, stats, q, cov, method)["deviance"]
        except torch.linalg.LinAlgError:  # a step far outside: tell L-BFGS to back off
            return float("inf"), np.zeros_like(theta)
        (grad,) = torch.autograd.grad(dev, th)
        return float(dev.detach()), grad.numpy()
    return f
