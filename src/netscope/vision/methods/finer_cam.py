"""Finer-CAM (Zhang et al. 2025; pytorch-grad-cam's ``FinerCAM``): Grad-CAM of the target
against the classes the model nearly confuses it with, so the map shows what sets the class
apart rather than what it shares with its neighbours.

The explained score is sum_j p_j (y_c - alpha y_j) / sum_j p_j over the ``comparisons``
classes j whose logits are nearest the target's, p the softmax probabilities (their
gradient included, as the authors' code); alpha = 0 is Grad-CAM of y_c, alpha = 1 the
difference to the neighbours. Class targets only.
"""

from __future__ import annotations

import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps
from netscope.vision.core.targets import ScoreFn, TargetLike, detached, resolve
from netscope.vision.methods.grad_cam_family import grad_cam


def neighbours(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """(N, k): each row's k classes with logits nearest its label's (the label excluded)."""
    gap = (logits - logits.gather(1, labels.view(-1, 1))).abs()
    gap.scatter_(1, labels.view(-1, 1), float("inf"))
    return gap.argsort(dim=1, stable=True)[:, :k]


@checked_images
def finer_cam(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
              layer: str | LayerRef | None = None, alpha: float = 1.0, comparisons: int = 3,
              normalize: str = "max") -> Heatmaps:
    """Finer-CAM maps (module docstring)."""
    with capture(model, []), torch.no_grad():
        logits = detached(model(x))
    t = resolve(logits, targets)
    if t.kind != "class" or logits.dim() != 2:
        raise NetscopeError("Finer-CAM compares a class with its neighbours; give class "
                            "targets of a classifier.")
    if logits.shape[1] < 2 or comparisons < 1:
        raise NetscopeError(f"Finer-CAM needs at least 1 comparison class and a model with "
                            f"2 classes or more; got {comparisons} of {logits.shape[1]}.")
    k = min(comparisons, logits.shape[1] - 1)
    main, near = t.labels, neighbours(logits, t.labels, k)

    def contrast(out: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(out, 1).gather(1, near)
        y = out.gather(1, main.view(-1, 1))
        return (p * (y - alpha * out.gather(1, near))).sum(1) / p.sum(1)

    heat = grad_cam(model, x, ScoreFn(contrast, key=t.key), layer=layer, normalize=normalize)
    heat.target, heat.classes, heat.method = t, t.labels, "finercam"
    heat.extras["neighbours"] = near
    if k < comparisons:
        heat.warnings.append(f"Finer-CAM: the model has {logits.shape[1]} classes, so each "
                             f"target is compared with {k}, not {comparisons}.")
    return heat
