"""Two gradient attributions Captum users reach for first.

- Input x Gradient (Shrikumar et al. 2016): each input value times the gradient of the
  target score; on a linear model it is each feature's term of the score.
- Deconvolution (Zeiler & Fergus 2014, as Captum runs it): the input gradient with every
  ReLU's backward replaced by the positive part of the incoming gradient, whatever the
  ReLU's input.

Both keep the signed attributions (N, C, H, W) in ``attributions``; the map is their
absolute value summed over colour channels (as Integrated Gradients').
"""

from __future__ import annotations

import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.capture import capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps, reduced
from netscope.vision.core.targets import TargetLike
from netscope.vision.methods.gradients import scored_gradient
from netscope.vision.methods.guided import _DeconvReLU, guided_relus


@checked_images
def input_x_gradient(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
                     normalize: str = "max") -> Heatmaps:
    """x times d score / d x, one forward and one backward pass."""
    with capture(model, []):
        grad, logits, t = scored_gradient(model, x, targets)
    attr = x.detach() * grad
    return Heatmaps(normalize_maps(reduced(attr, "abs-sum"), normalize), logits, t, t.labels,
                    "input", "input-x-gradient", attributions=attr, reduction="abs-sum")


@checked_images
def deconvolution(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
                  normalize: str = "max") -> Heatmaps:
    """The deconvnet's input map: gradients through ReLUs that pass positive parts only."""
    with capture(model, []), guided_relus(model, _DeconvReLU) as n:
        if n == 0:
            raise NetscopeError("Deconvolution changes the backward pass of nn.ReLU/ReLU6 "
                                "modules; this model has none (a ReLU called as a function "
                                "cannot be reached).")
        grad, logits, t = scored_gradient(model, x, targets)
    return Heatmaps(normalize_maps(reduced(grad, "abs-sum"), normalize), logits, t, t.labels,
                    "input", "deconvolution", attributions=grad, reduction="abs-sum")
