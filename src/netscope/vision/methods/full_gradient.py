"""FullGrad (Srinivas & Fleuret 2019): the input-gradient term x * dF/dx plus, at every
convolution and batch norm, the bias-gradient term b * dF/dz (z: the layer's output). For a
piecewise-linear network (ReLU-like activations, batch norm in evaluation mode) the terms
add up to the score exactly: F(x) = sum(x dF/dx) + sum over all biases (dense layers too)
of sum(b dF/dz). ``extras`` holds both totals and the completeness error.

The map is the paper's (and its authors' code): each term's absolute value, min-max scaled
per image over all its channels and positions, the bias terms bilinearly resized to the
input (corners aligned), summed over channels and layers. pytorch-grad-cam 1.5.7 scales
each channel on its own instead, which gives every channel of every layer the same weight
however little it contributes. A batch norm's bias is its effective one, beta - mean *
gamma / sqrt(var + eps), from the running statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.capture import capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps
from netscope.vision.core.targets import TargetLike, detached, resolve

EPS = 1e-6  # the authors' guard in the min-max scaling
INCOMPLETE = 0.01  # a completeness error above this is reported


def bias_of(module: nn.Module) -> torch.Tensor | None:
    """The bias a layer adds to each output channel (None: it adds none)."""
    if isinstance(module, nn.BatchNorm2d):
        if module.running_mean is None or not module.affine:
            return None
        scale = module.weight / torch.sqrt(module.running_var + module.eps)
        return (module.bias - module.running_mean * scale).detach()
    if isinstance(module, nn.Conv2d | nn.Linear) and module.bias is not None:
        return module.bias.detach()
    return None


def scaled_sum(values: torch.Tensor) -> torch.Tensor:
    """|values| min-max scaled per image over all channels and positions (the paper's
    post-processing), summed over channels: (sum_c |v| - C min) / (max - min + eps)."""
    v = values.abs()
    dims = tuple(range(1, v.dim()))  # amin/amax over dims: 20x faster than aminmax here
    lo, hi = v.amin(dims), v.amax(dims)
    shape = (-1, *[1] * (v.dim() - 2))
    return (v.sum(1) - v.shape[1] * lo.view(shape)) / (hi - lo + EPS).view(shape)


@checked_images
def full_grad(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
              normalize: str = "max") -> Heatmaps:
    """FullGrad maps at the input's resolution (module docstring)."""
    layers = {name: b for name, m in model.named_modules() if (b := bias_of(m)) is not None}
    if not any(isinstance(model.get_submodule(n), nn.Conv2d | nn.BatchNorm2d) for n in layers):
        raise NetscopeError("FullGrad needs convolutions or batch norms with biases; this "
                            "model has none (its bias terms would be empty).")
    with capture(model, list(layers)) as rec:
        xi = x.detach().clone().requires_grad_(True)
        out = model(xi)
        t = resolve(detached(out), targets)
        score = t.score(out)
        outputs = [rec[n] for n in layers]
        grads = torch.autograd.grad(score.sum(), [xi, *outputs], allow_unused=True)
    size = tuple(x.shape[-2:])
    input_term = grads[0] * x
    maps = scaled_sum(input_term)
    bias_total = torch.zeros_like(score.detach())
    for b, g in zip(layers.values(), grads[1:], strict=True):
        if g is None:
            continue
        term = g * b.view(1, -1, *[1] * (g.dim() - 2))
        bias_total += term.flatten(1).sum(1)
        if g.dim() == 4:  # resizing is linear: summing the channels first is the same map
            up = F.interpolate(scaled_sum(term)[:, None], size=size, mode="bilinear",
                               align_corners=True)
            maps = maps + up[:, 0]
    input_total = input_term.flatten(1).sum(1)
    s = score.detach()
    error = (s - input_total - bias_total).abs() / s.abs().clamp(min=1e-12)
    heat = Heatmaps(normalize_maps(maps, normalize), detached(out), t, t.labels, "input",
                    "fullgrad", normalize,
                    extras={"input_total": input_total, "bias_total": bias_total,
                            "completeness_error": error})
    if bool((error > INCOMPLETE).any()) or model.training:
        heat.warnings.append(
            f"FullGrad's terms miss the score by up to {float(error.max()):.1%}: they add up "
            f"only for a piecewise-linear network (ReLU-like activations, batch norm in "
            f"evaluation mode); the map still shows where the biases and the input matter.")
    return heat
