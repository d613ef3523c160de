"""The target's score on an image with only some of its segments kept (a coalition) and
the rest replaced by the baseline: what feature ablation, Shapley value sampling, KernelSHAP
and LIME all evaluate, hundreds of times per image, a batch at a time.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from netscope.vision.core.batched import batched_scores
from netscope.vision.core.targets import Resolved


def coalition_scores(model: nn.Module, x: torch.Tensor, base: torch.Tensor,
                     masks: torch.Tensor, coalitions: list[torch.Tensor], t: Resolved,
                     batch_size: int) -> list[torch.Tensor]:
    """Per image i, the target logit of each row of ``coalitions[i]`` (S_i, K_i) of 0/1:
    segment k of ``masks[i]`` (labels 0..K_i-1) kept where the row is 1."""
    counts = [len(z) for z in coalitions]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(int)
    owner = np.repeat(np.arange(x.shape[0]), counts)

    def make(start: int, stop: int) -> torch.Tensor:
        out = []
        for j in range(start, stop):
            i = int(owner[j])
            keep = coalitions[i][j - offsets[i]].to(x.device, x.dtype)[masks[i]]
            out.append(x[i] * keep + base[i] * (1 - keep))
        return torch.stack(out)

    scores = batched_scores(model, make, int(offsets[-1]), t[torch.from_numpy(owner)],
                            batch_size, "logit")
    return list(scores.split(counts))


def painted(values: list[torch.Tensor], masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W): each pixel gets its segment's value (``values[i]`` has one per segment)."""
    return torch.stack([v.to(masks.device)[m] for v, m in zip(values, masks, strict=True)])
