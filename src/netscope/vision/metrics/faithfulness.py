"""How faithful a heatmap is to the model: deletion and insertion (Petsiuk et al. 2018,
RISE) and the average drop / increase in confidence (Chattopadhay et al. 2018).

Deletion removes the input's pixels in the map's order, most important first (replacing
them by a baseline: blur, mean colour or zeros), and records the target's probability after
each step; a faithful map makes it fall fast, so a LOW area under the curve is better.
Insertion starts from the blurred image and restores pixels in the same order; a HIGH area
is better. The map is upsampled (bilinear) to the input's size; ties keep pixel order. Step
i of ``steps`` changes round(i * H * W / steps) pixels, and the area is the trapezoid rule
over those actual fractions, both end points included. All steps of all images go through
the model as batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.baselines import baseline_like
from netscope.vision.core.batched import BATCH, batched_scores, check_positive, class_scores
from netscope.vision.core.capture import capture
from netscope.vision.core.heatmaps import Heatmaps
from netscope.vision.core.targets import Resolved, TargetLike, resolve
from netscope.vision.metrics.scored import MetricInput, Plot, Scores
from netscope.vision.models.zoo import Preprocess


@dataclass
class Curve:
    """Probability of each image's target after each step, and the area under it."""

    metric: str  # "deletion" or "insertion"
    fractions: torch.Tensor  # (steps + 1,) share of pixels removed / restored
    scores: torch.Tensor  # (N, steps + 1)
    auc: torch.Tensor  # (N,)


def input_maps(maps: Heatmaps | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N, H, W) maps at the input's resolution, from Heatmaps or (N, h, w) tensors."""
    m = maps.maps if isinstance(maps, Heatmaps) else torch.as_tensor(maps)
    if m.dim() != 3 or m.shape[0] != x.shape[0]:
        raise NetscopeError(f"maps of shape {tuple(m.shape)} do not fit {x.shape[0]} image(s): "
                            f"give one (height, width) map per image.")
    m = m.to(dtype=x.dtype, device=x.device)
    if m.shape[-2:] != x.shape[-2:]:
        m = F.interpolate(m[:, None], size=x.shape[-2:], mode="bilinear",
                          align_corners=False)[:, 0]
    if not torch.isfinite(m).all():
        raise NetscopeError("the maps hold NaN or infinite values.")
    return m


def pixel_ranks(maps: torch.Tensor) -> torch.Tensor:
    """(N, H*W): each pixel's place when ordered by decreasing map value (0 = first)."""
    order = torch.sort(maps.flatten(1), dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return ranks


def targets_for(model, x, maps, targets) -> Resolved:
    """The targets to score: given, else the ones the maps explain, else the top-1 classes."""
    if targets is None and isinstance(maps, Heatmaps):
        targets = maps.target if maps.target is not None else maps.classes.to(x.device)
    with capture(model, []), torch.no_grad():
        return resolve(model(x), targets)


def _curve(metric: str, model: nn.Module, x: torch.Tensor, maps, targets: TargetLike, steps: int,
           baseline: str | torch.Tensor, batch_size: int) -> Curve:
    steps = check_positive("steps", steps)
    m = input_maps(maps, x)
    t = targets_for(model, x, maps, targets)
    ranks = pixel_ranks(m)
    base = baseline_like(x, baseline)
    pixels = ranks.shape[1]
    counts = torch.round(torch.arange(steps + 1, dtype=torch.float64) * pixels / steps).long() \
        .to(x.device)
    span = steps + 1

    def make(start: int, stop: int) -> torch.Tensor:
        j = torch.arange(start, stop, device=x.device)
        n, k = j // span, counts[j % span]
        changed = (ranks[n] < k[:, None]).view(-1, 1, *x.shape[-2:])
        first, second = (base[n], x[n]) if metric == "deletion" else (x[n], base[n])
        return torch.where(changed, first, second)

    scores = batched_scores(model, make, x.shape[0] * span, t.repeat_interleave(span),
                            batch_size, "prob").view(-1, span)
    fractions = counts.to(scores.dtype) / pixels
    return Curve(metric, fractions, scores, torch.trapezoid(scores, fractions, dim=1))


def deletion(model: nn.Module, x: torch.Tensor, maps: Heatmaps | torch.Tensor,
             targets: TargetLike = None, steps: int = 50, baseline: str | torch.Tensor = "blur",
             batch_size: int = BATCH) -> Curve:
    """Remove pixels most-important-first; lower area = more faithful (module docstring)."""
    return _curve("deletion", model, x, maps, targets, steps, baseline, batch_size)


def insertion(model: nn.Module, x: torch.Tensor, maps: Heatmaps | torch.Tensor,
              targets: TargetLike = None, steps: int = 50, start: str | torch.Tensor = "blur",
              batch_size: int = BATCH) -> Curve:
    """Restore pixels most-important-first onto ``start``; higher area = more faithful."""
    return _curve("insertion", model, x, maps, targets, steps, start, batch_size)


@dataclass
class ConfidenceChange:
    """Chattopadhay et al. (2018): the target's probability on the image (Y) and on the
    image multiplied by its map (O). Average drop = mean of max(0, Y - O) / Y (lower is
    better); increase in confidence = share of images with O > Y (higher is better)."""

    original: torch.Tensor  # Y, (N,)
    explained: torch.Tensor  # O, (N,)

    @property
    def drop(self) -> torch.Tensor:
        return (self.original - self.explained).clamp(min=0) / self.original

    @property
    def increase(self) -> torch.Tensor:
        return (self.explained > self.original).to(self.original.dtype)


def confidence_change(model: nn.Module, x: torch.Tensor, maps: Heatmaps | torch.Tensor,
                      targets: TargetLike = None,
                      pre: Preprocess | None = None) -> ConfidenceChange:
    """The image is multiplied by its map in pixel space ([0, 1], through ``pre``'s
    normalization) as the paper multiplies the image; without ``pre`` in input space."""
    m = input_maps(maps, x)
    if (m < 0).any() or (m > 1 + 1e-6).any():
        raise NetscopeError("confidence change needs maps scaled to [0, 1] (normalize='max').")
    t = targets_for(model, x, maps, targets)
    masked = x * m[:, None] if pre is None else \
        pre.normalize(pre.denormalize(x) * m[:, None])
    with capture(model, []), torch.no_grad():
        both = model(torch.cat([x, masked]))
    scores = class_scores(both, t.tile(2), "prob")
    return ConfidenceChange(scores[: x.shape[0]], scores[x.shape[0]:])


def deletion_scores(inp: MetricInput, *, steps: int, baseline: str) -> Scores:
    """The registry's deletion metric: the AUC per image, and the curve."""
    return _auc(deletion(inp.model, inp.x, inp.maps, inp.targets, steps, baseline,
                         inp.batch_size), "removed")


def insertion_scores(inp: MetricInput, *, steps: int, baseline: str) -> Scores:
    """The registry's insertion metric: the AUC per image, and the curve."""
    return _auc(insertion(inp.model, inp.x, inp.maps, inp.targets, steps, baseline,
                          inp.batch_size), "restored")


def _auc(curve: Curve, done: str) -> Scores:
    plot = Plot(curve.fractions, curve.scores, f"share of pixels {done}",
                "probability of the target class")
    return Scores({f"{curve.metric}_auc": curve.auc}, plot=plot,
                  record={"fractions": curve.fractions.tolist(),
                          "scores": curve.scores.tolist()})


def confidence_scores(inp: MetricInput) -> Scores:
    """The registry's confidence metric: average drop and increase in confidence."""
    change = confidence_change(inp.model, inp.x, inp.maps, inp.targets, inp.preprocess)
    return Scores({"average_drop": change.drop, "increase_in_confidence": change.increase})
