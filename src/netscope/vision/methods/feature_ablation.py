"""Feature ablation over segments (Captum's ``FeatureAblation`` with a feature mask): each
segment of the image (a cell of a grid, or a SLIC superpixel) is replaced by the baseline
in turn, and every pixel of it gets the target's drop. One forward pass per segment, in
batches. The segments are kept (``extras["segments"]``, (N, H, W) labels 0..K-1), so the
same mask can be handed to another library.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.baselines import baseline_like
from netscope.vision.core.batched import BATCH, batched_scores, check_positive, class_scores
from netscope.vision.core.capture import capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps
from netscope.vision.core.targets import TargetLike, resolve

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


@checked_images
def feature_ablation(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
                     segments: str | torch.Tensor = "grid", cells: int = 8,
                     baseline: str | torch.Tensor = "zeros", batch_size: int = BATCH,
                     normalize: str = "max") -> Heatmaps:
    """Per-pixel attributions: the target logit's drop when the pixel's segment is replaced
    by the baseline. ``segments`` may be a (N, H, W) or (H, W) label tensor of one's own."""
    masks = _masks(x, segments, cells)
    base = baseline_like(x, baseline)
    with capture(model, []), torch.no_grad():
        logits = model(x)
    t = resolve(logits, targets)
    full = class_scores(logits, t, "logit")
    counts = [int(m.max()) + 1 for m in masks]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    owner = np.repeat(np.arange(x.shape[0]), counts)  # variant j: image owner[j], segment

    def make(start: int, stop: int) -> torch.Tensor:
        out = []
        for j in range(start, stop):
            i = int(owner[j])
            keep = (masks[i] != j - offsets[i]).to(x.dtype)
            out.append(x[i] * keep + base[i] * (1 - keep))
        return torch.stack(out)

    total = int(offsets[-1])
    scores = batched_scores(model, make, total, t[torch.from_numpy(owner)], batch_size,
                            "logit")
    drops = full[torch.from_numpy(owner)] - scores
    attr = torch.stack([drops[offsets[i]:offsets[i + 1]][masks[i]]
                        for i in range(x.shape[0])])
    return Heatmaps(normalize_maps(torch.relu(attr), normalize), logits, t, t.labels, "input",
                    "feature-ablation", normalize, attributions=attr[:, None].expand_as(x),
                    extras={"segments": masks})


def _masks(x: torch.Tensor, segments, cells: int) -> torch.Tensor:
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
