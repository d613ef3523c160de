"""Feature ablation over segments (Captum's ``FeatureAblation`` with a feature mask): each
segment of the image (a cell of a grid, or a SLIC superpixel) is replaced by the baseline
in turn, and every pixel of it gets the target's drop. One forward pass per segment, in
batches. The segments are kept (``extras["segments"]``, (N, H, W) labels 0..K-1), so the
same mask can be handed to another library.
"""

from __future__ import annotations

import torch
from torch import nn

from netscope.vision.core.baselines import baseline_like
from netscope.vision.core.batched import BATCH, class_scores
from netscope.vision.core.capture import capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps
from netscope.vision.core.targets import TargetLike, resolve
from netscope.vision.methods.coalitions import coalition_scores, painted
from netscope.vision.methods.segments import segments_of


@checked_images
def feature_ablation(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
                     segments: str | torch.Tensor = "grid", cells: int = 8,
                     baseline: str | torch.Tensor = "zeros", batch_size: int = BATCH,
                     normalize: str = "max") -> Heatmaps:
    """Per-pixel attributions: the target logit's drop when the pixel's segment is replaced
    by the baseline. ``segments`` may be a (N, H, W) or (H, W) label tensor of one's own."""
    masks = segments_of(x, segments, cells)
    base = baseline_like(x, baseline)
    with capture(model, []), torch.no_grad():
        logits = model(x)
    t = resolve(logits, targets)
    full = class_scores(logits, t, "logit")
    alone = [1 - torch.eye(int(m.max()) + 1, dtype=torch.long) for m in masks]  # one off
    scores = coalition_scores(model, x, base, masks, alone, t, batch_size)
    attr = painted([full[i] - s for i, s in enumerate(scores)], masks)
    return Heatmaps(normalize_maps(torch.relu(attr), normalize), logits, t, t.labels, "input",
                    "feature-ablation", normalize, attributions=attr[:, None].expand_as(x),
                    reduction="sum-relu",
                    extras={"segments": masks})
