"""A dictionary at a glance: its training curve, how often each feature is active, and how
many features each channel serves (polysemanticity)."""

from __future__ import annotations

import numpy as np

from netscope.render.png import figure_png, subplots


def dictionary_png(losses: list[float], q, title: str) -> bytes:
    """Three panels: reconstruction error per epoch, feature usage (sorted), and the
    histogram of features per channel. ``q`` is the dictionary's ``Quality``."""
    fig, axes = subplots(1, 3, figsize=(12, 3.4), dpi=100)
    ax = axes[0]
    ax.plot(np.arange(1, len(losses) + 1), losses, marker="o", markersize=2, linewidth=1)
    ax.set_xlabel("epoch (NMF: iteration)")
    ax.set_ylabel("mean squared error (scaled)")
    ax.set_title(f"explained variance {q.explained_variance:.1%}", fontsize=9)
    ax = axes[1]
    usage = np.sort(q.usage)[::-1]
    ax.bar(np.arange(len(usage)), usage, width=1.0)
    ax.set_xlabel("feature (by usage)")
    ax.set_ylabel("share of samples active")
    ax.set_title(f"mean L0 {q.mean_l0:.2f}, {q.dead} dead", fontsize=9)
    ax = axes[2]
    used = q.features_per_channel[q.features_per_channel > 0]
    ax.hist(used, bins=min(30, max(5, len(used) // 4)))
    ax.set_xlabel("features per channel (effective number)")
    ax.set_ylabel("channels")
    ax.set_title(f"median {np.median(used) if used.size else 0:.2f}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return figure_png(fig)
