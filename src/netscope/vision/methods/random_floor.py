"""The random floor: a map of uniform noise, seeded, that any method must beat on the
faithfulness metrics to be worth looking at."""

from __future__ import annotations

import torch
from torch import nn

from netscope.vision.core.capture import capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps
from netscope.vision.core.targets import TargetLike, resolve


@checked_images
def random_map(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
               seed: int = 0, size: int = 14) -> Heatmaps:
    """(N, size, size) uniform noise in [0, 1), the same for a seed whatever the device;
    ``classes`` are the targets' (the map does not depend on them)."""
    with capture(model, []), torch.no_grad():
        logits = model(x)
    t = resolve(logits, targets)
    gen = torch.Generator().manual_seed(seed)
    maps = torch.rand((x.shape[0], size, size), generator=gen, dtype=x.dtype).to(x.device)
    return Heatmaps(maps, logits, t, t.labels, "input", "random")
