"""Guided backpropagation and guided Grad-CAM: sharp, class-discriminative pixel maps.

Guided backpropagation (Springenberg et al. 2015) lets a gradient through a ReLU only where
both the input and the gradient are positive, which gives crisp edges but hardly depends on
the class; multiplying it by the upsampled Grad-CAM map (Selvaraju et al. 2017) keeps the
edges of the class's region only. ReLUs are swapped for the guided version for the duration
of one call and always put back.
"""

from __future__ import annotations

import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps
from netscope.vision.core.module_swap import swapped_forwards
from netscope.vision.core.targets import TargetLike
from netscope.vision.methods.grad_cam_family import grad_cam
from netscope.vision.methods.gradients import scored_gradient


class _GuidedReLU(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients at positive inputs."""

    @staticmethod
    def forward(ctx, x, upper):
        ctx.save_for_backward(x)
        ctx.upper = upper
        return x.clamp(0, upper) if upper is not None else x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        positive = g.clamp(min=0)  # then the activation's own backward: two fused passes
        if ctx.upper is not None:
            return torch.ops.aten.hardtanh_backward(positive, x, 0.0, ctx.upper), None
        return torch.ops.aten.threshold_backward(positive, x, 0.0), None


class _DeconvReLU(torch.autograd.Function):
    """ReLU whose backward passes the positive part of the gradient, whatever the input
    (the deconvnet's rule, Zeiler & Fergus 2014)."""

    @staticmethod
    def forward(ctx, x, upper):
        return x.clamp(0, upper) if upper is not None else x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        return g.clamp(min=0), None


def guided_relus(model: nn.Module, rule: type[torch.autograd.Function] = _GuidedReLU):
    """Every nn.ReLU/ReLU6 module's backward follows ``rule`` (guided by default, or the
    deconvnet's) for the block; yields how many."""
    def make(m: nn.Module, _own):
        upper = 6.0 if isinstance(m, nn.ReLU6) else None
        return lambda inp: rule.apply(inp, upper)
    return swapped_forwards(model, (nn.ReLU, nn.ReLU6), make)


@checked_images
def guided_backprop(model: nn.Module, x: torch.Tensor,
                    targets: TargetLike = None) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2015): input gradient through guided ReLUs."""
    with capture(model, []), guided_relus(model) as n:
        if n == 0:
            raise NetscopeError("guided backpropagation needs nn.ReLU/ReLU6 modules; "
                                "this model has none.")
        return scored_gradient(model, x, targets)[0]


@checked_images
def guided_grad_cam(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
                    layer: str | LayerRef | None = None, normalize: str = "max") -> Heatmaps:
    """Guided backprop times the upsampled Grad-CAM map: the signed pixels (N, 3, H, W) in
    ``attributions``, their absolute sum over colours (scaled by ``normalize``) in ``maps``."""
    heat = grad_cam(model, x, targets, layer=layer, normalize=normalize)
    guided = guided_backprop(model, x, heat.target)
    pixels = guided * heat.upsampled(tuple(x.shape[-2:]))[:, None]
    return Heatmaps(normalize_maps(pixels.abs().sum(1), normalize), heat.logits, heat.target,
                    heat.classes, heat.layer, "guided", normalize, heat.warnings,
                    attributions=pixels, reduction="abs-sum")
