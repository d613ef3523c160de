"""Small linear-algebra helpers shared by the linear model families."""

from __future__ import annotations

import numpy as np


def independent_columns(gram: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Indices of a maximal set of linearly independent columns, kept in order: a column is
    dropped when its residual, after projecting on the columns kept before it, is below
    ``tol`` times its own norm (one-hot groups beside a constant, duplicated features)."""
    keep: list[int] = []
    for j in range(gram.shape[0]):
        norm2 = gram[j, j]
        if norm2 <= 0:
            continue
        if keep:
            K = gram[np.ix_(keep, keep)]
            k = gram[keep, j]
            resid = norm2 - k @ np.linalg.solve(K, k)
        else:
            resid = norm2
        if resid > tol * norm2:
            keep.append(j)
    return np.asarray(keep, dtype=np.int64)


def within_varying(X: np.ndarray, t: np.ndarray, n_tasks: int, tol: float = 1e-8) -> np.ndarray:
    """Which columns vary inside tasks: the within-task sum of squares is more than ``tol`` of
    the column's total (a school-level feature, constant in every school, does not)."""
    counts = np.bincount(t, minlength=n_tasks).astype(np.float64)
    means = np.stack([np.bincount(t, weights=X[:, j], minlength=n_tasks) for j in
                      range(X.shape[1])], axis=1) / np.maximum(counts, 1)[:, None]
    within = ((X - means[t]) ** 2).sum(0)
    total = ((X - X.mean(0)) ** 2).sum(0)
    return within > tol * np.maximum(total, 1e-300)


def covariance_to_correlation(cov: np.ndarray) -> np.ndarray:
    """Correlations from a covariance; 0 (not NaN) for a variable with no variance."""
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    safe = np.where(sd > 0, sd, 1.0)
    corr = np.clip(cov / np.outer(safe, safe), -1, 1)
    zero = sd == 0
    corr[zero, :] = 0.0
    corr[:, zero] = 0.0
    np.fill_diagonal(corr, np.where(zero, 0.0, 1.0))
    return corr
