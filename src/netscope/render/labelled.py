"""A single method's picture as a reader needs it: the overlay with the class, the method and
the layer it came from in the title and a colour bar that says what the colours mean.
``--bare`` keeps the plain overlay (the model's input size, nothing drawn around it)."""

from __future__ import annotations

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from netscope.render.png import figure_png, subplots

# how each kind of picture was coloured: (colour map, low, high, what the bar measures)
SCALES = {
    "map": ("jet", 0.0, 1.0, "share of the map's maximum"),
    "saliency": ("inferno", 0.0, 1.0, "the map, share of its 99th percentile"),
    "relevance": ("bwr", -1.0, 1.0, "for (red) / against (blue), share of the 99th pct of |value|"),
    "gradient": ("gray", -1.0, 1.0, "signed gradient, share of its 99th percentile"),
}


def labelled_png(picture: np.ndarray, title: str, scale: str) -> bytes:
    """``picture`` (H, W, 3) in [0, 1] under ``title``, with the colour bar of ``scale``."""
    cmap, low, high, what = SCALES[scale]
    h, w = picture.shape[:2]
    fig, ax = subplots(figsize=(4.4, 3.5 * h / w + 0.6), dpi=100)
    ax.imshow(np.clip(picture, 0, 1))
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    bar = fig.colorbar(ScalarMappable(Normalize(low, high), cmap), ax=ax, fraction=0.046,
                       pad=0.03)
    bar.set_label(what, fontsize=7)
    bar.ax.tick_params(labelsize=7)
    fig.tight_layout()
    return figure_png(fig)
