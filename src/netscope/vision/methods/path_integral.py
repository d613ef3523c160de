"""Integrated Gradients (Sundararajan et al. 2017): attribution_i = (x_i - x'_i) times the
average gradient along the straight path from a baseline x' to the image x.

The path integral is the trapezoid rule over ``steps`` equal intervals (steps + 1 points),
all points in batches. Completeness says the attributions sum to F(x) - F(x') (F: the
target's logit); the relative gap, reported per image, tells whether the steps were enough.
The heatmap is |attribution| summed over colour channels.
"""

from __future__ import annotations

import torch
from torch import nn

from netscope.vision.core.batched import BATCH
from netscope.vision.core.capture import capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps, reduced
from netscope.vision.core.targets import TargetLike
from netscope.vision.methods.gradients import input_grad
from netscope.vision.methods.straight_path import straight_path


@checked_images
def integrated_gradients(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
                         baseline: str | torch.Tensor = "zeros", steps: int = 32,
                         batch_size: int = BATCH) -> Heatmaps:
    """IG maps; the signed attributions (N, C, H, W) are in ``attributions``, and
    ``extras`` holds per image ``delta`` = F(x) - F(baseline) and ``completeness_error`` =
    |sum(attributions) - delta| / |delta|."""
    p = straight_path(model, x, targets, baseline, steps, batch_size)
    total = torch.zeros_like(x)
    with capture(model, []):
        for img, k, points in p.batches(batch_size):
            g = input_grad(model, points, p.t[img])
            total.index_add_(0, img, g * p.weights[k].view(-1, 1, 1, 1))
    attr = (x - p.base) * total
    return Heatmaps(normalize_maps(reduced(attr, "abs-sum")), p.logits, p.t, p.t.labels,
                    "input", "integrated-gradients", attributions=attr, reduction="abs-sum",
                    extras={"delta": p.delta, "completeness_error": p.completeness_error(attr)})
