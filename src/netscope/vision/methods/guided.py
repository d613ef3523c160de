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
from netscope.vision.core.layer_choice import INPUT_IGNORED, default_layer, scores_ignore_input
from netscope.vision.core.module_swap import swapped_forwards
from netscope.vision.core.targets import TargetLike, detached, resolve
from netscope.vision.core.token_grid import layout_for
from netscope.vision.methods.grad_cam_family import cam_warnings, variant_maps
from netscope.vision.methods.gradients import scored_gradient


class _GuidedReLU(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients at positive inputs (while
    ``rule.guided``; the plain ReLU gradient otherwise, so one forward pass serves both)."""

    @staticmethod
    def forward(ctx, x, upper, rule=None):
        ctx.save_for_backward(x)
        ctx.upper, ctx.rule = upper, rule
        return x.clamp(0, upper) if upper is not None else x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        if ctx.rule is None or ctx.rule.guided:
            g = g.clamp(min=0)  # then the activation's own backward: two fused passes
        if ctx.upper is not None:
            return torch.ops.aten.hardtanh_backward(g, x, 0.0, ctx.upper), None, None
        return torch.ops.aten.threshold_backward(g, x, 0.0), None, None


class Rule:
    """Which backward a guided ReLU runs now (guided, or the plain one)."""

    def __init__(self, guided: bool = True) -> None:
        self.guided = guided


class _DeconvReLU(torch.autograd.Function):
    """ReLU whose backward passes the positive part of the gradient, whatever the input
    (the deconvnet's rule, Zeiler & Fergus 2014)."""

    @staticmethod
    def forward(ctx, x, upper, _switch=None):
        return x.clamp(0, upper) if upper is not None else x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        return g.clamp(min=0), None, None


def guided_relus(model: nn.Module, rule: type[torch.autograd.Function] = _GuidedReLU,
                 switch: Rule | None = None):
    """Every nn.ReLU/ReLU6 module's backward follows ``rule`` (guided by default, or the
    deconvnet's) for the block, the guided rule only while ``switch.guided`` when a switch
    is given; yields how many."""
    def make(m: nn.Module, _own):
        upper = 6.0 if isinstance(m, nn.ReLU6) else None
        return lambda inp: rule.apply(inp, upper, switch)
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
    ``attributions``, their absolute sum over colours (scaled by ``normalize``) in ``maps``.
    One forward pass, two backward passes: the plain one to the layer (Grad-CAM's
    gradient), then the guided one to the input."""
    ref = LayerRef.parse(layer or default_layer(model, x))
    switch = Rule(guided=False)
    with capture(model, [ref]) as rec, guided_relus(model, switch=switch) as n:
        if n == 0:
            raise NetscopeError("guided backpropagation needs nn.ReLU/ReLU6 modules; "
                                "this model has none.")
        xi = x.detach().clone().requires_grad_(True)
        out = model(xi)
        t = resolve(detached(out), targets)
        score = t.score(out).sum()
        A = rec[ref]
        layout = layout_for(model, A, tuple(x.shape[-2:]), str(ref), None)
        (g_layer,) = torch.autograd.grad(score, A, retain_graph=True, allow_unused=True)
        switch.guided = True
        (g_input,) = torch.autograd.grad(score, xi, allow_unused=True)
    A = layout.to_grid(A.detach())
    g_layer = torch.zeros_like(A) if g_layer is None else layout.to_grid(g_layer)
    if not bool(g_layer.abs().amax() > 0) and scores_ignore_input(model, x):
        raise NetscopeError(INPUT_IGNORED)  # as Grad-CAM says it
    g_input = torch.zeros_like(x) if g_input is None else g_input
    cam = Heatmaps(normalize_maps(variant_maps(A, g_layer, "gradcam"), normalize),
                   detached(out), t, t.labels, str(ref), "gradcam", normalize)
    pixels = g_input * cam.upsampled(tuple(x.shape[-2:]))[:, None]
    return Heatmaps(normalize_maps(pixels.abs().sum(1), normalize), cam.logits, t, t.labels,
                    cam.layer, "guided", normalize, cam_warnings(A, g_layer, ref, "gradcam", 0.0),
                    attributions=pixels, reduction="abs-sum")
