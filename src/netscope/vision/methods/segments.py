"""The features that perturbation methods switch on and off in an image: the cells of a
grid, SLIC superpixels (scikit-image), or a label map of one's own (Captum's
``feature_mask``). Feature ablation, Shapley value sampling, KernelSHAP and LIME share them,
so the same segments can be handed to another library.
"""

from __future__ import annotations

import numpy as np
import torch

from netscope.errors import NetscopeError
from netscope.vision.core.batched import check_positive

SEGMENTS = ("grid", "slic")


def segment_masks(x: torch.Tensor, segments: str = "grid", cells: int = 8) -> torch.Tensor:
    """(N, H, W) segment labels 0..K-1: a ``cells`` x ``cells`` grid, or about ``cells``
    SLIC superpixels of each image (scikit-image, compactness 10, on the image min-max
    scaled to [0, 1])."""
    if segments not in SEGMENTS:
        raise NetscopeError(f"segments must be one of {', '.join(SEGMENTS)}, got "
                            f"{segments!r}.")
    cells = check_positive("cells", cells)
    n, _, h, w = x.shape
    if segments == "grid":
        if cells > min(h, w):
            raise NetscopeError(f"a {cells} x {cells} grid has more cells than the image "
                                f"({h}x{w}) has pixels along a side; use fewer --cells.")
        rows = torch.arange(h, device=x.device) * cells // h
        cols = torch.arange(w, device=x.device) * cells // w
        return (rows[:, None] * cells + cols[None, :]).expand(n, h, w).clone()
    if cells > h * w:
        raise NetscopeError(f"{cells} superpixels asked of a {h}x{w} image ({h * w} pixels); "
                            f"use fewer --cells.")
    from skimage.segmentation import slic

    out = []
    for img in x.detach().cpu().numpy():
        pic = np.moveaxis(img, 0, -1)
        pic = (pic - pic.min()) / max(float(pic.max() - pic.min()), 1e-12)
        labels = slic(pic, n_segments=cells, compactness=10.0, start_label=0,
                      channel_axis=-1)
        out.append(torch.from_numpy(np.unique(labels, return_inverse=True)[1]
                                    .reshape(h, w)))
    return torch.stack(out).to(x.device)


def segments_of(x: torch.Tensor, segments, cells: int) -> torch.Tensor:
    """(N, H, W) labels 0..K-1 per image: made by ``segment_masks`` from a name, or a
    label tensor of one's own (N, H, W) or (H, W), renumbered from 0."""
    if not isinstance(segments, torch.Tensor):
        return segment_masks(x, segments, cells)
    m = segments.to(x.device).long()
    m = m.expand(x.shape[0], *m.shape) if m.dim() == 2 else m
    if tuple(m.shape) != (x.shape[0], *x.shape[-2:]):
        raise NetscopeError(f"segments must be (N, H, W) = ({x.shape[0]}, "
                            f"{x.shape[-2]}, {x.shape[-1]}) or (H, W) labels, got "
                            f"{tuple(segments.shape)}.")
    if (m < 0).any():
        raise NetscopeError("segment labels must be >= 0.")
    return torch.stack([torch.unique(mi, return_inverse=True)[1] for mi in m])
