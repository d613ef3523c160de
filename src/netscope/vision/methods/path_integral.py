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

from netscope.vision.core.baselines import baseline_like
from netscope.vision.core.batched import BATCH, channels_last, check_positive, chunks, class_scores
from netscope.vision.core.capture import capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps, reduced
from netscope.vision.core.targets import TargetLike, resolve
from netscope.vision.methods.gradients import input_grad


@checked_images
def integrated_gradients(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
                         baseline: str | torch.Tensor = "zeros", steps: int = 32,
                         batch_size: int = BATCH) -> Heatmaps:
    """IG maps; the signed attributions (N, C, H, W) are in ``attributions``, and
    ``extras`` holds per image ``delta`` = F(x) - F(baseline) and ``completeness_error`` =
    |sum(attributions) - delta| / |delta|."""
    steps = check_positive("steps", steps)
    check_positive("batch_size", batch_size)
    base = baseline_like(x, baseline)
    n = x.shape[0]
    alphas = torch.linspace(0, 1, steps + 1, dtype=x.dtype, device=x.device)
    weights = torch.ones_like(alphas) / steps
    weights[0] = weights[-1] = 0.5 / steps
    with capture(model, []):
        with torch.no_grad():
            out, out_base = model(x), model(base)
        t = resolve(out, targets)
        delta = class_scores(out, t, "logit") - class_scores(out_base, t, "logit")
        total = torch.zeros_like(x)
        points = n * (steps + 1)  # point j: image j // (steps + 1), alpha j % (steps + 1)
        for j in chunks(points, batch_size):
            j = j.to(x.device)
            img, a = j // (steps + 1), alphas[j % (steps + 1)].view(-1, 1, 1, 1)
            path = base[img] + a * (x[img] - base[img])
            g = input_grad(model, channels_last(path), t[img])
            total.index_add_(0, img, g * weights[j % (steps + 1)].view(-1, 1, 1, 1))
    attr = (x - base) * total
    gap = (attr.flatten(1).sum(1) - delta).abs()
    error = gap / torch.where(delta != 0, delta.abs(), torch.ones_like(delta))
    return Heatmaps(normalize_maps(reduced(attr, "abs-sum")), out, t, t.labels, "input",
                    "integrated-gradients", attributions=attr, reduction="abs-sum",
                    extras={"delta": delta, "completeness_error": error})
