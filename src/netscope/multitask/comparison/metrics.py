"""Metrics, each with the definition printed beside it (papers disagree on these)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFINITIONS = {
    "mse_std": "test MSE on the standardized target scale (original MSE / SD^2 of the "
               "protocol's target scaler)",
    "mse": "test MSE in the target's original units",
    "rmse": "square root of the original-scale test MSE",
    "explained_variance": "1 - MSE / Var(y_test), pooled over all test rows of the split",
    "train_seconds": "wall-clock seconds to fit (this machine; noisy)",
}


@dataclass(frozen=True)
class Scores:
    mse_std: float
    mse: float
    rmse: float
    explained_variance: float
    per_task_mse: np.ndarray  # (T,) original-scale MSE per task


def score(y_true: np.ndarray, y_pred: np.ndarray, task: np.ndarray, n_tasks: int,
          reference_scale: float) -> Scores:
    """All metrics for one split, on the original scale of the target."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    err2 = (y_pred - y_true) ** 2
    mse = float(err2.mean())
    counts = np.bincount(task, minlength=n_tasks)
    per_task = np.bincount(task, weights=err2, minlength=n_tasks) / np.maximum(counts, 1)
    var = float(np.var(y_true))
    return Scores(
        mse_std=mse / reference_scale**2, mse=mse, rmse=float(np.sqrt(mse)),
        explained_variance=1.0 - mse / var if var > 0 else float("nan"),
        per_task_mse=np.where(counts > 0, per_task, np.nan),
    )


def bland_altman(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, np.ndarray | float]:
    """Mean of and difference between prediction and truth; bias and 1.96-SD limits."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    diff = y_pred - y_true
    bias, sd = float(diff.mean()), float(diff.std(ddof=1)) if diff.size > 1 else 0.0
    return {"mean": (y_pred + y_true) / 2, "diff": diff, "bias": bias,
            "lower": bias - 1.96 * sd, "upper": bias + 1.96 * sd}
