"""The straight path from a baseline to each image, integrated by the trapezoid rule over
``steps`` intervals (steps + 1 points): what Integrated Gradients and conductance share.
The targets are fixed on the images, and F(x) - F(baseline) is kept for completeness."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from netscope.vision.core.baselines import baseline_like
from netscope.vision.core.batched import (
    channels_last,
    check_positive,
    chunks,
    class_scores,
    two_outputs,
)
from netscope.vision.core.targets import Resolved, TargetLike, resolve


@dataclass
class StraightPath:
    """The images, their baselines, outputs and targets, the drop, and the path's points
    (fractions of the way from the baseline) with their trapezoid weights."""

    x: torch.Tensor
    base: torch.Tensor
    logits: torch.Tensor
    t: Resolved
    delta: torch.Tensor
    alphas: torch.Tensor
    weights: torch.Tensor

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor,
                                                           torch.Tensor]]:
        """(image index, point index, the points' images) a batch at a time."""
        points = len(self.alphas)
        for j in chunks(self.x.shape[0] * points, batch_size):
            j = j.to(self.x.device)
            img, k = j // points, j % points
            yield img, k, channels_last(self.base[img] + self.alphas[k].view(-1, 1, 1, 1) * (
                self.x[img] - self.base[img]))

    def completeness_error(self, attr: torch.Tensor) -> torch.Tensor:
        """|sum(attributions) - delta| / |delta| per image."""
        gap = (attr.flatten(1).sum(1) - self.delta).abs()
        return gap / torch.where(self.delta != 0, self.delta.abs(), torch.ones_like(self.delta))


def straight_path(model: nn.Module, x: torch.Tensor, targets: TargetLike, baseline,
                  steps: int, batch_size: int) -> StraightPath:
    steps = check_positive("steps", steps)
    check_positive("batch_size", batch_size)
    base = baseline_like(x, baseline)
    logits, base_out = two_outputs(model, x, base)
    t = resolve(logits, targets)
    delta = class_scores(logits, t, "logit") - class_scores(base_out, t, "logit")
    alphas = torch.linspace(0, 1, steps + 1, dtype=x.dtype, device=x.device)
    weights = torch.full_like(alphas, 1 / steps)
    weights[0] = weights[-1] = 0.5 / steps
    return StraightPath(x, base, logits, t, delta, alphas, weights)
