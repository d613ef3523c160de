"""Input gradients: saliency (Simonyan et al. 2013) and SmoothGrad (Smilkov et al. 2017).

Saliency is |d score / d pixel|, max over colour channels. SmoothGrad is the mean of
|gradient| over noisy copies (noise SD = ``noise`` x the input's range), the absolute value
taken per copy as Captum does. Averaging signed gradients instead cancels the signal with
the noise: on EfficientNet-Lite0 that gave maps worse than the plain gradient, as did 15%
noise.
"""

from __future__ import annotations

import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.capture import capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps
from netscope.vision.core.targets import Resolved, TargetLike, detached, resolve


@checked_images
def saliency(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
             samples: int = 0, noise: float = 0.05, seed: int = 0) -> Heatmaps:
    """Saliency maps at the input's resolution; ``samples`` > 0 is SmoothGrad."""
    if samples > 0 and not 0 < noise < 10:
        raise NetscopeError(f"SmoothGrad noise must be a positive fraction of the input's "
                            f"range (e.g. 0.05), got {noise}.")
    with capture(model, []):
        if samples <= 0:  # one pass gives the logits, the targets and the gradient
            xi = x.detach().clone().requires_grad_(True)
            out = model(xi)
            logits = detached(out)
            t = resolve(logits, targets)
            (grad,) = torch.autograd.grad(t.score(out).sum(), xi)
        else:
            with torch.no_grad():
                logits = model(x)
            t = resolve(logits, targets)
            grad = _smoothed(model, x, t, samples, noise, seed)
    maps = grad.abs().amax(1)
    method = "smoothgrad" if samples > 0 else "saliency"
    return Heatmaps(normalize_maps(maps, "max"), logits, t, t.labels, "input", method)


def _smoothed(model: nn.Module, x: torch.Tensor, t: Resolved, samples: int, noise: float,
              seed: int) -> torch.Tensor:
    """Mean |gradient| over ``samples`` noisy copies, one noise pattern per sample scaled
    per image (an image's map must not depend on the other images in its batch)."""
    gen = torch.Generator().manual_seed(seed)
    sd = noise * (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, 1, 1, 1)
    grad = torch.zeros_like(x)
    for _ in range(samples):
        eps = torch.randn((1, *x.shape[1:]), generator=gen, dtype=x.dtype)
        grad += input_grad(model, x + eps.to(x.device) * sd, t).abs()
    return grad / samples


def input_grad(model: nn.Module, x: torch.Tensor, t: Resolved) -> torch.Tensor:
    """d (sum of each image's target score) / d input (zero where a score does not
    depend on the input, e.g. a box target that no detection matches)."""
    xi = x.detach().clone().requires_grad_(True)
    score = t.score(model(xi)).sum()
    if not score.requires_grad:
        return torch.zeros_like(xi)
    (grad,) = torch.autograd.grad(score, xi, allow_unused=True)
    return torch.zeros_like(xi) if grad is None else grad
