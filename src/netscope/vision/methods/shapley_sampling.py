"""Shapley value sampling (Castro et al. 2009; Captum's ``ShapleyValueSampling``) over
segments: for each of ``samples`` random orders, the segments are put back one by one on
the baseline and each gets the change of the target's logit when it comes in; a segment's
value is its mean change, and every pixel of it gets that value.

Per order and image, K + 1 forward passes (K: segments), all in batches; the all-baseline
start is shared. The values of an image sum to F(x) - F(baseline) for every order
(efficiency), so the map explains exactly the drop to the baseline. Each image draws its
orders from its own generator seeded by ``seed``: its map does not depend on the other
images of the batch.
"""

from __future__ import annotations

import torch
from torch import nn

from netscope.vision.core.baselines import baseline_like
from netscope.vision.core.batched import BATCH, check_positive, class_scores
from netscope.vision.core.capture import capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps, reduced
from netscope.vision.core.targets import TargetLike, resolve
from netscope.vision.methods.coalitions import coalition_scores, painted
from netscope.vision.methods.segments import segments_of


@checked_images
def shapley_sampling(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
                     segments: str | torch.Tensor = "grid", cells: int = 4,
                     baseline: str | torch.Tensor = "zeros", samples: int = 25, seed: int = 0,
                     batch_size: int = BATCH, normalize: str = "max") -> Heatmaps:
    """Shapley values of the segments (module docstring); signed per-pixel values in
    ``attributions``, per image ``extras["delta"]`` = F(x) - F(baseline)."""
    samples = check_positive("samples", samples)
    masks = segments_of(x, segments, cells)
    orders = []
    for m in masks:
        gen = torch.Generator().manual_seed(seed)
        orders.append(torch.stack([torch.randperm(int(m.max()) + 1, generator=gen)
                                   for _ in range(samples)]))
    return shapley_orders(model, x, targets, masks, orders, baseline, batch_size, normalize)


def shapley_orders(model: nn.Module, x: torch.Tensor, targets: TargetLike,
                   masks: torch.Tensor, orders: list[torch.Tensor],
                   baseline: str | torch.Tensor = "zeros", batch_size: int = BATCH,
                   normalize: str = "max") -> Heatmaps:
    """Shapley value sampling over given ``orders``: per image, (S, K_i) permutations of its
    segments (another library's, for the same samples)."""
    base = baseline_like(x, baseline)
    with capture(model, []), torch.no_grad():
        logits = model(x)
    t = resolve(logits, targets)
    rows = [_prefixes(o, int(m.max()) + 1) for o, m in zip(orders, masks, strict=True)]
    scores = coalition_scores(model, x, base, masks, rows, t, batch_size)
    values = [_values(s, o) for s, o in zip(scores, orders, strict=True)]
    attr = painted(values, masks)[:, None].expand_as(x)
    delta = class_scores(logits, t, "logit") - torch.stack([s[0] for s in scores])
    return Heatmaps(normalize_maps(reduced(attr, "sum-relu"), normalize), logits, t, t.labels,
                    "input", "shapley-sampling", normalize, attributions=attr,
                    reduction="sum-relu", extras={"segments": masks, "delta": delta})


def _prefixes(orders: torch.Tensor, k: int) -> torch.Tensor:
    """Rows: the empty coalition, then per order the first 1..K segments of it."""
    rows = [torch.zeros(1, k, dtype=torch.long)]
    for o in orders:
        ranks = torch.empty(k, dtype=torch.long)
        ranks[o] = torch.arange(k)
        rows.append((ranks[None, :] <= torch.arange(k)[:, None]).long())
    return torch.cat(rows)


def _values(scores: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
    """Mean marginal change of each segment over the orders (rows as ``_prefixes``)."""
    k = len(orders[0])
    total = torch.zeros(k, dtype=scores.dtype)
    for s, o in enumerate(orders):
        path = torch.cat([scores[:1], scores[1 + s * k:1 + (s + 1) * k]])
        total[o] += (path[1:] - path[:-1]).cpu()
    return total / len(orders)
