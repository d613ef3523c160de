"""Which dictionary features matter for a class (CRAFT, Fel et al. 2023): each image's codes
at the layer are masked feature by feature with quasi-random masks, the layer's activations
rebuilt from the masked codes (codes x atoms) and put back into the network, and the class
score's total Sobol index per feature (Jansen's estimator) measures how much of the score's
variance a feature carries, alone or with others. The design is craft-xai's: an unscrambled
Halton sequence in 2K dimensions gives matrices A and B of ``designs`` rows each, and for
every feature k a copy of A with column k taken from B; an image costs designs x (K + 2)
forward passes.

The concept maps are each feature's codes over the layer's grid (what CRAFT draws, scaled
by the importance when asked).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.concepts.learn import Learned
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.token_grid import Layout, layout_for


def halton_design(features: int, designs: int) -> np.ndarray:
    """(designs x (K + 2), K) masks in [0, 1): A, B, then for each k, A with column k from
    B (craft-xai's ``HaltonSequence``)."""
    from scipy.stats import qmc

    ab = qmc.Halton(2 * features, scramble=False).random(designs).astype(np.float32)
    a, b = ab[:, :features], ab[:, features:]
    c = np.repeat(a[None], features, 0)
    for k in range(features):
        c[k, :, k] = b[:, k]
    return np.concatenate([a, b, c.reshape(-1, features)], 0)


def jansen_total(outputs: np.ndarray, designs: int, features: int) -> np.ndarray:
    """Total Sobol indices from the outputs of ``halton_design``'s rows (in order):
    sum over rows of (f(A) - f(C_k))^2 / (2 designs Var f(A)), Var with n - 1."""
    a = outputs[:designs]
    c = outputs[2 * designs:].reshape(features, designs)
    var = float(np.sum((a - a.mean()) ** 2) / (designs - 1))
    if not np.isfinite(var) or var <= 0:
        return np.zeros(features)
    return ((a[None] - c) ** 2).sum(1) / (2 * designs * var)


@dataclass
class Importance:
    """Features ranked for one class over some images."""

    target: int
    importance: np.ndarray  # (K,) mean total Sobol index over the images
    per_image: np.ndarray  # (n, K)
    codes: np.ndarray  # (n, K, h, w) each feature's codes on the layer's grid

    def ranked(self) -> np.ndarray:
        return np.argsort(-self.importance, kind="stable")


def class_importance(model: nn.Module, layer: str, learned: Learned, x: torch.Tensor,
                     target: int, designs: int = 32, batch: int = 64) -> Importance:
    """The total Sobol index of every dictionary feature for class ``target`` on images
    ``x`` (n, 3, H, W), each image separately, then averaged (craft-xai's
    ``estimate_importance``)."""
    if designs < 2:
        raise NetscopeError(f"designs must be at least 2, got {designs}.")
    ref = LayerRef.parse(layer)
    with capture(model, [ref]) as rec, torch.no_grad():
        scores = model(x)
        acts = rec[ref]
    n_classes = scores.shape[-1]
    if not 0 <= target < n_classes:
        raise NetscopeError(f"class {target} is not one of the model's {n_classes} classes.")
    layout = layout_for(model, acts, tuple(x.shape[-2:]), layer)
    grid = layout.to_grid(acts).float()  # (n, C, h, w)
    n, channels, h, w = grid.shape
    atoms = learned.model.atoms().detach()
    if atoms.shape[1] != channels:
        raise NetscopeError(f"the dictionary has {atoms.shape[1]} channels but layer {layer} "
                            f"has {channels}: it was learned on another layer or model.")
    k = atoms.shape[0]
    masks = torch.from_numpy(halton_design(k, designs))
    per_image, codes = [], []
    for i in range(n):
        u = learned.encode(grid[i].flatten(1).T)  # (h w, K)
        codes.append(u.T.reshape(k, h, w).numpy())
        out = _masked_scores(model, ref, layout, x[i:i + 1], acts[i:i + 1], u, atoms,
                             learned.scale, masks, (h, w), target, batch)
        per_image.append(jansen_total(out, designs, k))
    per = np.array(per_image)
    return Importance(target, per.mean(0), per, np.array(codes))


def _masked_scores(model, ref, layout: Layout, x1, like, u, atoms, scale, masks, hw, target,
                   batch) -> np.ndarray:
    """The class score with the layer's activations rebuilt from codes times each mask."""
    h, w = hw
    out = []
    for lo in range(0, len(masks), batch):
        m = masks[lo:lo + batch]
        rebuilt = ((u[None] * m[:, None, :]) @ atoms) * scale  # (b, h w, C)
        grid = rebuilt.transpose(1, 2).reshape(len(m), -1, h, w).to(like.dtype)
        new = layout.from_grid(grid, like)
        with capture(model, [ref], edit=lambda _, new=new: new), torch.no_grad():
            out.append(model(x1.expand(len(m), -1, -1, -1))[:, target].float().cpu().numpy())
    return np.concatenate(out)
