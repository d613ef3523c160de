"""Grids of pictures: feature maps of a layer, and labelled image rows, as PNG bytes."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def feature_grid_png(act: np.ndarray, layer: str, max_channels: int = 64,
                     cmap: str = "viridis") -> bytes:
    """A layer's feature maps (C, h, w), each scaled on its own, with channel indices."""
    c = act.shape[0]
    shown = min(c, max_channels)
    cols = math.ceil(math.sqrt(shown))
    rows = math.ceil(shown / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.3 * rows + 0.5), dpi=100,
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < shown:
            m = act[i]
            span = m.max() - m.min()
            ax.imshow((m - m.min()) / span if span > 0 else np.zeros_like(m), cmap=cmap)
            ax.set_title(str(i), fontsize=6, pad=1)
    more = f", first {shown} of {c} channels" if shown < c else ""
    fig.suptitle(f"{layer}  {tuple(act.shape)}{more}", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return _png(fig)


def image_row_png(images: Sequence[np.ndarray], labels: Sequence[str], cols: int = 8) -> bytes:
    """RGB float images in a grid, each with its label."""
    n = len(images)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.2 * rows), dpi=100,
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(np.clip(images[i], 0, 1))
            ax.set_title(labels[i], fontsize=7)
    fig.tight_layout()
    return _png(fig)
