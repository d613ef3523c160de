"""Heatmaps over images: a colormap, blended onto the picture the model saw."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps


def colorize(heat: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) RGB float."""
    return colormaps[cmap](np.clip(heat, 0, 1))[..., :3].astype(np.float32)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45,
            cmap: str = "jet") -> np.ndarray:
    """Blend a colorized heatmap (same H, W as the image) over an RGB float image."""
    if heat.shape != image.shape[:2]:
        raise ValueError(f"heatmap {heat.shape} and image {image.shape[:2]} differ in size")
    return np.clip((1 - alpha) * image + alpha * colorize(heat, cmap), 0, 1)


def gradient_image(grad: np.ndarray) -> np.ndarray:
    """(3, H, W) signed gradient -> viewable RGB: centred on grey, scaled by its 99th pct."""
    g = np.transpose(grad, (1, 2, 0))
    scale = np.percentile(np.abs(g), 99) or 1.0
    return np.clip(0.5 + 0.5 * g / scale, 0, 1)


def saliency_image(sal: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """Saliency for display: scaled so its 99th percentile is full brightness (a few extreme
    pixels would otherwise leave the rest black)."""
    top = np.percentile(sal, percentile)
    return colorize(np.clip(sal / top, 0, 1) if top > 0 else np.zeros_like(sal), "inferno")


def relevance_image(relevance: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """Signed relevance (H, W) on a diverging map centred on zero: red for evidence for the
    target, blue against it, white for none; scaled by the 99th percentile of |R| on both
    sides alike, so the two kinds of evidence compare."""
    top = np.percentile(np.abs(relevance), percentile)
    scaled = relevance / top if top > 0 else np.zeros_like(relevance)
    return colorize(0.5 + 0.5 * np.clip(scaled, -1, 1), "bwr")
