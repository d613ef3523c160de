"""Target scores for many perturbed copies of a few images, in batches.

Perturbation methods and faithfulness metrics (Score-CAM, Occlusion, Integrated Gradients'
path, deletion/insertion, ROAD) all need the model's score on hundreds of variants of each
image. They are made a batch at a time by a ``make(start, stop)`` function, so memory stays
bounded however many variants there are, and each batch is one forward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.capture import capture
from netscope.vision.core.fastpath import truncated
from netscope.vision.core.targets import Resolved, class_score, detached

# Lite0 on 2 CPU cores: 11.8 ms per image at batch 16 (channels-last), 21 ms at batch 64,
# whose activations no longer fit the caches
BATCH = 16


def check_positive(name: str, value: int) -> int:
    if int(value) != value or value < 1:
        raise NetscopeError(f"{name} must be a whole number >= 1, got {value!r}.")
    return int(value)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """Images in channels-last memory (oneDNN's convolutions run about 1.3x faster on
    them); other tensors as they are."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def chunks(total: int, batch_size: int) -> list[torch.Tensor]:
    """Row indices in batches of ``batch_size``, a small tail (under a quarter of a batch)
    joined to the batch before it: 17 path points at batch size 16 make one pass, not a
    pass of 16 and another of 1, which costs as much as several rows in a batch."""
    check_positive("batch_size", batch_size)
    starts = list(range(0, total, batch_size))
    if len(starts) > 1 and total - starts[-1] < batch_size / 4:
        starts.pop()
    ends = [*starts[1:], total]
    return [torch.arange(a, b) for a, b in zip(starts, ends, strict=True)]


def two_outputs(model: nn.Module, a: torch.Tensor, b: torch.Tensor):
    """The model's (detached) outputs on batches ``a`` and ``b``: one forward pass when it
    returns a tensor (a start-up pass costs as much as one at batch 1), two otherwise (a
    dict or detector output cannot be split by rows)."""
    with capture(model, []), torch.no_grad():
        both = model(torch.cat([a, b]))
        if isinstance(both, torch.Tensor):
            return both[:len(a)].detach(), both[len(a):].detach()
        return detached(model(a)), detached(model(b))


def class_scores(out, targets: torch.Tensor | Resolved, scale: str) -> torch.Tensor:
    """Each row's score for its target: softmax probability or raw logit (``scale``) for a
    class, the target's own value for other targets (``targets.Resolved``)."""
    if isinstance(targets, Resolved):
        return targets.score(out, scale)
    return class_score(out, targets, scale)


def batched_scores(model: nn.Module, make: Callable[[int, int], torch.Tensor], total: int,
                   targets: torch.Tensor | Resolved, batch_size: int = BATCH,
                   scale: str = "prob") -> torch.Tensor:
    """Score of variant i (``make(i, i + 1)[0]``) for class ``targets[i]``, for i < total.

    Forward passes only, so they run on the model's simplified trace when it can be traced
    (batch norm folded into the convolutions: ``fastpath.truncated``; 1.25x faster on
    EfficientNet-Lite0 with 2 idle cores, 1.9x on one busy core; same outputs to 1e-5),
    in channels-last (oneDNN's convolutions run about 1.3x faster)."""
    check_positive("batch_size", batch_size)
    out = []
    net = truncated(model, None) or model
    with capture(model, []), torch.no_grad():
        for start in range(0, total, batch_size):
            stop = min(total, start + batch_size)
            batch = channels_last(make(start, stop))
            out.append(class_scores(net(batch), targets[start:stop], scale))
    return torch.cat(out) if out else torch.zeros(0)
