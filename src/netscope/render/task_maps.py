"""Pictures of how tasks relate: a heat map of learned task correlations, ordered so that
clusters show as blocks, and 2-D maps where nearby tasks behave alike."""

from __future__ import annotations

import numpy as np

from netscope.render.png import figure_png, subplots


def cluster_order(corr: np.ndarray) -> np.ndarray:
    """Leaf order of average-linkage clustering on 1 - correlation (similar tasks adjacent)."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    if corr.shape[0] < 3:
        return np.arange(corr.shape[0])
    dist = np.clip(1.0 - corr, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    return leaves_list(linkage(squareform((dist + dist.T) / 2, checks=False), "average"))


def correlation_heatmap_png(corr: np.ndarray, title: str) -> bytes:
    order = cluster_order(corr)
    fig, ax = subplots(figsize=(5.2, 4.6), dpi=110)
    im = ax.imshow(corr[np.ix_(order, order)], cmap="RdBu_r", vmin=-1, vmax=1,
                   interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="correlation")
    ax.set_xlabel("task (ordered by clustering)")
    ax.set_ylabel("task (ordered by clustering)")
    ax.set_title(title, fontsize=10)
    return figure_png(fig)


def mds_2d(corr: np.ndarray) -> np.ndarray:
    """Classical multidimensional scaling of the correlation matrix (tasks as points whose
    inner products approximate their correlations): the top two eigen-directions."""
    vals, vecs = np.linalg.eigh((corr + corr.T) / 2)
    top = np.argsort(vals)[::-1][:2]
    return vecs[:, top] * np.sqrt(np.clip(vals[top], 0, None))


def pca_2d(Z: np.ndarray) -> np.ndarray:
    """The first two principal components of the rows of Z (tasks x coordinates)."""
    Z = Z - Z.mean(0)
    if not np.any(Z):
        return np.zeros((Z.shape[0], 2))
    U, S, _ = np.linalg.svd(Z, full_matrices=False)
    out = U[:, :2] * S[:2]
    return np.hstack([out, np.zeros((Z.shape[0], 2 - out.shape[1]))])


def task_map_png(points: np.ndarray, names: list[str], colour: np.ndarray | None,
                 title: str, colour_label: str = "") -> bytes:
    """Tasks as points; the colour (e.g. each task's mean target) shows what the axes mean;
    the most extreme tasks are named."""
    fig, ax = subplots(figsize=(5.2, 4.6), dpi=110)
    sc = ax.scatter(points[:, 0], points[:, 1], c=colour, cmap="viridis", s=18, alpha=0.8)
    if colour is not None:
        fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.04, label=colour_label)
    far = np.argsort(-np.hypot(*(points - points.mean(0)).T))[:6]
    middle = float(np.median(points[:, 0]))
    for i in far:  # names point inward, so none runs off the plot
        right = points[i, 0] > middle
        ax.annotate(names[i], points[i], fontsize=7, xytext=(-3 if right else 3, 3),
                    textcoords="offset points", ha="right" if right else "left")
    ax.set_xlabel("map axis 1")
    ax.set_ylabel("map axis 2")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()  # keeps the colour bar's label inside the picture
    return figure_png(fig)
