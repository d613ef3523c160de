"""Bland-Altman plots: agreement between prediction and truth on the original scale."""

from __future__ import annotations

import numpy as np

from netscope.multitask.comparison.metrics import bland_altman
from netscope.render.png import figure_png, subplots


def bland_altman_png(y_true: np.ndarray, y_pred: np.ndarray, title: str, unit: str) -> bytes:
    """PNG bytes: mean of (prediction, truth) against their difference, bias and limits."""
    ba = bland_altman(y_true, y_pred)
    fig, ax = subplots(figsize=(5.2, 3.8), dpi=110)
    ax.scatter(ba["mean"], ba["diff"], s=5, alpha=0.35, color="#1f77b4", linewidths=0)
    for key, style, label in (("bias", "-", "bias"), ("upper", "--", "+1.96 SD"),
                              ("lower", "--", "-1.96 SD")):
        ax.axhline(ba[key], color="#d62728", linestyle=style, linewidth=1)
        ax.annotate(f"{label} {value_text(ba[key])}", xy=(1.0, ba[key]),
                    xycoords=("axes fraction", "data"),
                    xytext=(-4, 2), textcoords="offset points", ha="right", fontsize=7,
                    color="#d62728")
    ax.set_xlabel(f"mean of prediction and truth ({unit})")
    ax.set_ylabel(f"prediction - truth ({unit})")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return figure_png(fig)


def value_text(v: float) -> str:
    """Three significant digits, never "-0.00": a tiny bias shows its size (-0.0013), an
    exact zero as 0."""
    v = float(v)
    return "0" if v == 0 or abs(v) < 1e-12 else f"{v:.3g}"
