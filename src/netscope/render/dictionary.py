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


def craft_png(images: list[tuple[str, np.ndarray]], importance, class_name: str,
              top: int = 5) -> bytes:
    """CRAFT's view of a class: the features ranked by importance (bars), and for each
    image its top features' code maps over it (upsampled from the layer's grid)."""
    from netscope.render.heatmap import overlay

    order = importance.ranked()[:top]
    rows = 1 + len(images)
    fig, axes = subplots(rows, top + 1, figsize=(2.1 * (top + 1), 2.1 * rows + 0.4),
                         squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    bar = axes[0, 0]
    bar.axis("on")
    ranked = importance.ranked()
    bar.bar(np.arange(len(ranked)), importance.importance[ranked], width=0.9)
    bar.set_title("total Sobol index", fontsize=8)
    bar.set_xticks([])
    for col, k in enumerate(order, start=1):
        axes[0, col].text(0.5, 0.5, f"feature {k}\n{importance.importance[k]:.3f}",
                          ha="center", va="center", fontsize=9)
    for row, (name, rgb) in enumerate(images, start=1):
        axes[row, 0].imshow(rgb)
        axes[row, 0].set_title(name[:24], fontsize=7)
        H, W = rgb.shape[:2]
        for col, k in enumerate(order, start=1):
            heat = _upsampled(importance.codes[row - 1, k], (H, W))
            top_value = float(importance.codes[:, k].max()) or 1.0
            axes[row, col].imshow(overlay(rgb, np.clip(heat / top_value, 0, 1)))
    fig.suptitle(f"CRAFT: the dictionary features behind {class_name}", fontsize=10)
    fig.tight_layout()
    return figure_png(fig, dpi=80)


def _upsampled(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(grid, dtype=np.float32))[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def tcav_png(results, class_name: str) -> bytes:
    """TCAV scores per concept and layer (mean over random sets, with each run's score as a
    dot), beside the scores random sets give each other; non-significant concepts hatched."""
    fig, ax = subplots(figsize=(max(4.5, 1.2 * len(results) + 1.5), 3.6), dpi=100)
    for i, t in enumerate(results):
        ax.bar(i - 0.2, t.score, width=0.4, color="tab:blue",
               hatch=None if t.significant else "//", edgecolor="white")
        ax.scatter(np.full(len(t.scores), i - 0.2), t.scores, s=8, color="black", zorder=3)
        ax.bar(i + 0.2, float(np.mean(t.random_scores)), width=0.4, color="lightgrey")
        ax.scatter(np.full(len(t.random_scores), i + 0.2), t.random_scores, s=8,
                   color="dimgrey", zorder=3)
    ax.set_xticks(range(len(results)))
    ax.set_xticklabels([f"{t.concept}\n{t.layer}\np={t.p_value:.2g}" for t in results],
                       fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("TCAV score (share of images)")
    ax.set_title(f"concepts for {class_name} (grey: random sets; hatched: not significant)",
                 fontsize=9)
    fig.tight_layout()
    return figure_png(fig)
