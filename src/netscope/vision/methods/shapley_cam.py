"""Shapley-CAM (Cai et al. 2025, "CAMs as Shapley value-based explainers"; pytorch-grad-cam's
``ShapleyCAM``): Grad-CAM's channel weights with the second-order term of a Taylor
expansion of the score's Shapley values: alpha_k = mean_ij (g - H A / 2)_kij, H A the
Hessian of the score with respect to the activations times the activations (one
Hessian-vector product, by double backpropagation from the layer on).

The score is the paper's ReST, the target's logit plus its log-probability (logit minus
the cross-entropy), whose curvature the softmax gives; with the logit alone
(``score="logit"``) a piecewise-linear head has no curvature and the map is Grad-CAM's.
Targets other than classes are scored as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps
from netscope.vision.core.layer_choice import default_layer
from netscope.vision.core.targets import Resolved, TargetLike, detached, resolve, select_output
from netscope.vision.core.token_grid import layout_for

SCORES = ("rest", "logit")


def rest_score(out, t: Resolved) -> torch.Tensor:
    """ReST: each row's logit plus its log-softmax probability (class targets)."""
    score = t.score(out)
    if t.kind != "class":
        return score
    logits = select_output(out, t.key)
    return score + F.log_softmax(logits, 1).gather(1, t.labels.view(-1, 1))[:, 0]


@checked_images
def shapley_cam(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
                layer: str | LayerRef | None = None, score: str = "rest",
                normalize: str = "max") -> Heatmaps:
    """Shapley-CAM maps (module docstring)."""
    if score not in SCORES:
        raise NetscopeError(f"score must be one of {', '.join(SCORES)}, got {score!r}.")
    layer = layer or default_layer(model, x)
    ref = LayerRef.parse(layer)
    with capture(model, [ref], cut=True) as rec:
        out = model(x)
        A = rec[ref]
        t = resolve(detached(out), targets)
        s = rest_score(out, t) if score == "rest" else t.score(out)
        (g,) = torch.autograd.grad(s.sum(), A, create_graph=True)
        hvp = torch.autograd.grad(g, A, grad_outputs=A.detach(), allow_unused=True)[0] \
            if g.requires_grad else None
    layout = layout_for(model, A, tuple(x.shape[-2:]), str(layer), None)
    acts, grad = layout.to_grid(A.detach()), layout.to_grid(g.detach())
    second = torch.zeros_like(grad) if hvp is None else layout.to_grid(hvp.detach())
    weights = (grad - 0.5 * second).mean((2, 3), keepdim=True)
    maps = F.relu((weights * acts).sum(1))
    return Heatmaps(normalize_maps(maps, normalize), detached(out), t, t.labels, str(layer),
                    "shapleycam", normalize)
