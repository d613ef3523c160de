"""The noise tunnel (Captum's ``NoiseTunnel``; Smilkov et al. 2017, Adebayo et al. 2018):
any method run on noisy copies of the images, its results combined.

``kind``: 'smoothgrad' averages, 'smoothgrad_sq' averages the squares, 'vargrad' takes the
variance. A method that keeps signed attributions (N, C, H, W) has those combined, and its
map drawn from them as the method draws it (``Heatmaps.reduction``), as Captum combines
attributions; any other method (the CAMs, Occlusion) has its maps combined, as
pytorch-grad-cam's ``aug_smooth`` averages its scaled maps. SmoothGrad is this tunnel
over saliency, whose attributions are |gradient| (Captum's ``Saliency``, abs=True).

Noise: SD = ``noise`` times each image's value range, one draw per sample shared by the
images of the batch and scaled per image, so an image's map does not depend on the other
images in its batch (Captum draws per row, with one absolute SD). The targets are fixed on
the clean images: every noisy copy explains its image's class.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.batched import BATCH
from netscope.vision.core.capture import capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps, reduced, top_classes
from netscope.vision.core.targets import Resolved, TargetLike, detached, resolve
from netscope.vision.methods.registry import TUNNEL_KINDS as KINDS


@checked_images
def noise_tunnel(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
                 method: Callable[..., Heatmaps], samples: int = 16, noise: float = 0.05,
                 kind: str = "smoothgrad", seed: int = 0, **settings) -> Heatmaps:
    """``method(model, noisy x, targets, **settings)`` on ``samples`` noisy copies of the
    batch, combined by ``kind`` (module docstring)."""
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise NetscopeError(f"the noise tunnel needs at least 1 noisy sample, got "
                            f"{samples!r}.")
    if not 0 < noise < 10:
        raise NetscopeError(f"noise tunnel (SmoothGrad): noise must be a positive fraction of "
                            f"the input's range below 10 (e.g. 0.05), got {noise!r}.")
    if kind not in KINDS:
        raise NetscopeError(f"noise tunnel kind must be one of {', '.join(KINDS)}, got "
                            f"{kind!r}.")
    return tunnel_draws(method, model, x, targets, noise_draws(x, samples, noise, seed), kind,
                        **settings)


def noise_draws(x: torch.Tensor, samples: int, noise: float, seed: int) -> torch.Tensor:
    """(samples, N, C, H, W): one Gaussian pattern per sample, shared by the images and
    scaled by each image's value range times ``noise``."""
    gen = torch.Generator().manual_seed(seed)
    span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, *[1] * (x.dim() - 1))
    return torch.stack([torch.randn((1, *x.shape[1:]), generator=gen, dtype=x.dtype)
                        .to(x.device) * noise * span for _ in range(samples)])


def tunnel_draws(method: Callable[..., Heatmaps], model: nn.Module, x: torch.Tensor,
                 targets: TargetLike, draws: torch.Tensor, kind: str = "smoothgrad",
                 **settings) -> Heatmaps:
    """The tunnel on given noise ``draws`` (S, N or 1, C, H, W), added as they are: the
    same samples as another library's give the same result. Several samples go to the
    method in one call (a batch of about ``BATCH`` images)."""
    with capture(model, []), torch.no_grad():
        logits = detached(model(x))
    t = resolve(logits, targets)
    n, per = x.shape[0], max(1, BATCH // x.shape[0])  # samples per call: one batch
    first = second = heat = None
    for start in range(0, len(draws), per):
        eps = draws[start:start + per]
        k = eps.shape[0]
        heat = method(model, (x[None] + eps).flatten(0, 1), t.tile(k), **settings)
        value = _combined_value(heat)
        value = value.view(k, n, *value.shape[1:])  # rows are sample-major
        first = value.sum(0) if first is None else first + value.sum(0)
        second = (value * value).sum(0) if second is None else second + (value * value).sum(0)
    mean, square = first / len(draws), second / len(draws)
    out = {"smoothgrad": mean, "smoothgrad_sq": square, "vargrad": square - mean * mean}[kind]
    return _result(heat, out, logits, t)


def _combined_value(heat: Heatmaps) -> torch.Tensor:
    if heat.attributions is not None and heat.reduction is not None:
        return heat.attributions.detach()
    return heat.maps.detach()


def _result(heat: Heatmaps, out: torch.Tensor, logits, t: Resolved) -> Heatmaps:
    """The combined attributions (and the map drawn from them), or the combined maps."""
    if heat.attributions is not None and heat.reduction is not None:
        maps, attributions = reduced(out, heat.reduction), out
    else:
        maps, attributions = out, None
    how = heat.normalized if heat.normalized != "none" else "max"
    agnostic = heat.target is None  # Eigen-CAM, rollout: labels only
    return Heatmaps(normalize_maps(maps, how), logits, None if agnostic else t,
                    top_classes(logits) if agnostic else t.labels, heat.layer,
                    heat.method, how, list(heat.warnings), attributions=attributions,
                    signed_evidence=heat.signed_evidence, reduction=heat.reduction)
