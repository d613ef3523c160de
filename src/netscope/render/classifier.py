"""Pictures for yes/no targets: every model's ROC curve on one plot, and a reliability
diagram (does a predicted 30% happen 30% of the time?)."""

from __future__ import annotations

import numpy as np

from netscope.multitask.comparison.metrics import reliability, roc_curve
from netscope.render.png import figure_png, subplots


def roc_png(curves: list[tuple[str, np.ndarray, np.ndarray, float]], title: str) -> bytes:
    """(label, y in {0, 1}, predicted probability, the AUC to print) per model -> one ROC
    plot."""
    fig, ax = subplots(figsize=(5.2, 4.4), dpi=110)
    for label, y, p, auc in curves:
        fpr, tpr = roc_curve(y, p)
        ax.plot(fpr, tpr, linewidth=1, label=f"{label} (AUC {auc:.3f})")
    return _finish(fig, ax, "false positive rate", "true positive rate", title, "lower right")


def reliability_png(curves: list[tuple[str, np.ndarray, np.ndarray]], title: str,
                    ylabel: str = "observed share of the positive class",
                    xlabel: str = "mean predicted probability (bin)") -> bytes:
    """Observed share of 1s against the mean predicted probability in ten bins, per model;
    on the diagonal a model's probabilities mean what they say."""
    fig, ax = subplots(figsize=(5.2, 4.4), dpi=110)
    for label, y, p, *_ in curves:
        r = reliability(y, p)
        ax.plot(r["predicted"], r["observed"], marker="o", markersize=3, linewidth=1,
                label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    return _finish(fig, ax, xlabel, ylabel, title, "upper left")


def _finish(fig, ax, xlabel: str, ylabel: str, title: str, legend: str) -> bytes:
    """The diagonal (chance for ROC, calibration for reliability), labels, legend, PNG."""
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=6, loc=legend)
    fig.tight_layout()
    return figure_png(fig)
