"""Occlusion (Zeiler & Fergus 2014): slide a window over the image, replace what it covers
by a baseline, and record how much the target's score drops. A pixel's value is the mean
drop over all window positions that cover it (as Captum defines it); windows are placed
every ``stride`` pixels, with a last one flush with the border, and run in batches.
"""

from __future__ import annotations

import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.baselines import baseline_like
from netscope.vision.core.batched import BATCH, batched_scores, check_positive, class_scores
from netscope.vision.core.capture import capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps
from netscope.vision.core.targets import TargetLike, resolve


def _starts(length: int, window: int, stride: int) -> list[int]:
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


@checked_images
def occlusion(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
              window: int = 32, stride: int = 16, baseline: str | torch.Tensor = "zeros",
              batch_size: int = BATCH, scale: str = "logit",
              normalize: str = "max") -> Heatmaps:
    """Occlusion maps at the input's resolution; ``scale`` reads the target as a logit
    (default) or a softmax probability."""
    window, stride = check_positive("window", window), check_positive("stride", stride)
    h, w = x.shape[-2:]
    if window > min(h, w):
        raise NetscopeError(f"the occlusion window ({window} px) is larger than the image "
                            f"({h}x{w}); use a smaller --window.")
    base = baseline_like(x, baseline)
    with capture(model, []), torch.no_grad():
        logits = model(x)
    t = resolve(logits, targets)
    full = class_scores(logits, t, scale)
    spots = [(r, c) for r in _starts(h, window, stride) for c in _starts(w, window, stride)]
    k = len(spots)

    def make(start: int, stop: int) -> torch.Tensor:
        out = []
        for j in range(start, stop):
            r, c = spots[j % k]
            img = x[j // k].clone()
            img[:, r:r + window, c:c + window] = base[j // k, :, r:r + window, c:c + window]
            out.append(img)
        return torch.stack(out)

    drops = full.repeat_interleave(k) - batched_scores(model, make, x.shape[0] * k,
                                                       t.repeat_interleave(k), batch_size, scale)
    total = torch.zeros(x.shape[0], h, w, dtype=x.dtype, device=x.device)
    count = torch.zeros(h, w, dtype=x.dtype, device=x.device)
    for i, (r, c) in enumerate(spots):
        total[:, r:r + window, c:c + window] += drops.view(-1, k)[:, i, None, None]
        count[r:r + window, c:c + window] += 1
    maps = total / count
    return Heatmaps(normalize_maps(torch.relu(maps), normalize), logits, t, t.labels, "input",
                    "occlusion", normalize)
