"""Grids of pictures: feature maps of a layer, and labelled image rows, as PNG bytes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from netscope.errors import NetscopeError
from netscope.render.png import figure_png, subplots
from netscope.vision.core.heatmaps import normalized_array

ORDERS = ("auto", "index", "strongest")


def choose_channels(act: np.ndarray, max_channels: int, order: str = "auto") -> list[int]:
    """Which channels of (C, h, w) to draw: the first ``max_channels`` (``index``), or those
    with the largest mean activation, strongest first (``strongest``: what this image
    excites). ``auto`` is ``index`` when every channel fits, else ``strongest``."""
    if order not in ORDERS:
        raise NetscopeError(f"channel order must be one of {', '.join(ORDERS)}, got {order!r}.")
    if max_channels < 1:
        raise NetscopeError(f"max_channels must be at least 1, got {max_channels}.")
    c = act.shape[0]
    if order == "index" or (order == "auto" and c <= max_channels):
        return list(range(min(c, max_channels)))
    means = act.reshape(c, -1).mean(1)
    return [int(i) for i in np.argsort(-means, kind="stable")[:max_channels]]


def feature_grid_png(act: np.ndarray, layer: str, max_channels: int = 64,
                     cmap: str = "viridis", order: str = "auto", shared: bool = False) -> bytes:
    """A layer's feature maps (C, h, w) with channel indices, each scaled on its own (shows
    every map's pattern) or, with ``shared``, on one scale with a colour bar (shows which
    channels are strong)."""
    if act.ndim != 3:
        raise NetscopeError(f"layer {layer} has no feature maps (shape {tuple(act.shape)}, not "
                            f"channels x height x width): pick a convolutional layer "
                            f"(`netscope vision layers` lists them).")
    c = act.shape[0]
    chosen = choose_channels(act, max_channels, order)
    cols = math.ceil(math.sqrt(len(chosen)))
    rows = math.ceil(len(chosen) / cols)
    fig, axes = subplots(rows, cols, figsize=(max(1.6 * cols, 5.0), 1.6 * rows + 0.7),
                             dpi=100, squeeze=False)  # tiles big enough to read in a notebook
    lo, hi = float(act[chosen].min()), float(act[chosen].max())
    image = None
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(chosen):
            m = act[chosen[i]]
            if shared:
                image = ax.imshow(m, cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1)
            else:
                ax.imshow(normalized_array(m[None])[0], cmap=cmap, vmin=0, vmax=1)
            ax.set_title(str(chosen[i]), fontsize=8, pad=1)
    if chosen != list(range(len(chosen))):
        what = f"the {len(chosen)} of {c} channels with the largest mean; "
    elif len(chosen) < c:
        what = f"first {len(chosen)} of {c} channels; "
    else:
        what = ""
    scale = "one colour scale" if shared else "each map scaled on its own"
    fig.suptitle(f"{layer}  {tuple(act.shape)}\n{what}{scale}", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.88 if shared else 1, 0.95))
    if shared and image is not None:
        fig.colorbar(image, cax=fig.add_axes((0.9, 0.1, 0.015, 0.75)))
    return figure_png(fig)


def image_row_png(images: Sequence[np.ndarray], labels: Sequence[str], cols: int = 8,
                  label_size: float = 7) -> bytes:
    """RGB float images in a grid, each with its label."""
    n = len(images)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig, axes = subplots(rows, cols, figsize=(2.0 * cols, 2.2 * rows), dpi=100,
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(np.clip(images[i], 0, 1))
            ax.set_title(labels[i], fontsize=label_size)
    fig.tight_layout()
    return figure_png(fig)
