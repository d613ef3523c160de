"""Where a unit fires inside one of its strongest images: its activation grid on that image,
placed on the input pixels through the layer's receptive-field geometry (grid position g
sits at pixel start + g * jump), so the site can show it over the patch the unit sees.
The grids are recomputed from the images when the site is written: the atlas itself keeps
only units x K numbers, never a grid per example."""

from __future__ import annotations

import numpy as np
import torch

from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.token_grid import Layout
from netscope.vision.models.zoo import LoadedModel
from netscope.vision.units.receptive_field import Field


def unit_grids(lm: LoadedModel, x: torch.Tensor,
               layouts: dict[str, Layout]) -> dict[str, np.ndarray]:
    """Each layer's (units, h, w) activation grid for one preprocessed image (1, 3, H, W)."""
    refs = {name: LayerRef.parse(name) for name in layouts}
    with capture(lm.model, list(refs.values())) as rec, torch.no_grad():
        lm.model(x)
        return {name: layouts[name].to_grid(rec[ref])[0].float().cpu().numpy()
                for name, ref in refs.items()}


def pixel_map(grid: np.ndarray, field: Field, size: int) -> np.ndarray:
    """(size, size) bilinear placement of one unit's (h, w) grid on the input's pixels:
    pixel p reads grid position (p - start) / jump, held at the edge grid values beyond
    the first and last unit's centres."""
    rows = _weights(size, grid.shape[0], field.start[0], field.jump[0])
    cols = _weights(size, grid.shape[1], field.start[1], field.jump[1])
    return rows @ grid.astype(np.float64) @ cols.T


def _weights(size: int, n: int, start: float, jump: float) -> np.ndarray:
    """(size, n) linear-interpolation weights from n grid positions to size pixels."""
    g = np.clip((np.arange(size) - start) / jump, 0, n - 1)
    lo = np.minimum(np.floor(g).astype(int), max(n - 2, 0))
    frac = g - lo
    w = np.zeros((size, n))
    w[np.arange(size), lo] = 1 - frac if n > 1 else 1.0
    if n > 1:
        w[np.arange(size), lo + 1] = frac
    return w
