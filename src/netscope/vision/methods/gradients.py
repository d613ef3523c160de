"""Input gradients: saliency (Simonyan et al. 2013) and SmoothGrad (Smilkov et al. 2017).

Saliency is |d score / d pixel|, max over colour channels. SmoothGrad is the noise tunnel
over it (``noise_tunnel``): the mean of |gradient| over noisy copies (noise SD = ``noise`` x
the input's range), the absolute value taken per copy as Captum does. Averaging signed
gradients instead cancels the signal with the noise: on EfficientNet-Lite0 that gave maps
worse than the plain gradient, as did 15% noise.
"""

from __future__ import annotations

import torch
from torch import nn

from netscope.vision.core.capture import capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps, reduced
from netscope.vision.core.targets import Resolved, TargetLike, detached, resolve
from netscope.vision.methods.noise_tunnel import noise_tunnel


@checked_images
def saliency(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
             samples: int = 0, noise: float = 0.05, seed: int = 0) -> Heatmaps:
    """Saliency maps at the input's resolution; ``samples`` > 0 is SmoothGrad: the noise
    tunnel over saliency. ``attributions`` are |gradient| per colour (Captum's
    ``Saliency``), the map their maximum over colours."""
    if samples > 0:
        heat = noise_tunnel(model, x, targets, method=saliency, samples=samples, noise=noise,
                            seed=seed)
        heat.method = "smoothgrad"
        return heat
    with capture(model, []):
        grad, logits, t = scored_gradient(model, x, targets)
    return Heatmaps(normalize_maps(reduced(grad, "abs-max"), "max"), logits, t, t.labels,
                    "input", "saliency", attributions=grad.abs(), reduction="abs-max")


def scored_gradient(model: nn.Module, x: torch.Tensor, targets: TargetLike
                    ) -> tuple[torch.Tensor, torch.Tensor, Resolved]:
    """One forward pass gives the logits, the resolved targets and d(target scores)/d(x)
    (see ``input_grad`` for scores that do not depend on the input)."""
    xi = x.detach().clone().requires_grad_(True)
    out = model(xi)
    t = resolve(detached(out), targets)
    return _grad_or_zero(t.score(out).sum(), xi), detached(out), t


def input_grad(model: nn.Module, x: torch.Tensor, t: Resolved) -> torch.Tensor:
    """d (sum of each image's target score) / d input (zero where a score does not
    depend on the input, e.g. a box target that no detection matches)."""
    xi = x.detach().clone().requires_grad_(True)
    return _grad_or_zero(t.score(model(xi)).sum(), xi)


def _grad_or_zero(score: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    if not score.requires_grad:
        return torch.zeros_like(xi)
    (grad,) = torch.autograd.grad(score, xi, allow_unused=True)
    return torch.zeros_like(xi) if grad is None else grad
