"""GradientSHAP (Lundberg & Lee 2017; Captum's ``GradientShap``): Integrated Gradients in
expectation. Per sample, a baseline b is drawn from a set of references, a point is drawn
uniformly on the straight line from b to the (optionally noisy) image x', and the sample's
attribution is (x' - b) times the gradient there; the attributions are the mean over
samples. Their sum approaches F(x) - E F(b) as the samples grow (exactly so, sample by
sample, on a linear model); ``extras["delta"]`` is F(x) minus the mean of F over the
drawn baselines, to compare with.

Each image draws its samples (baseline, point, noise) from its own generator seeded by
``seed``; all samples run in batches of ``batch_size``.
"""

from __future__ import annotations

import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.baselines import baseline_sets
from netscope.vision.core.batched import (
    BATCH,
    channels_last,
    check_positive,
    chunks,
    class_scores,
    two_outputs,
)
from netscope.vision.core.capture import capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps, reduced
from netscope.vision.core.targets import TargetLike, resolve
from netscope.vision.methods.gradients import input_grad


@checked_images
def gradient_shap(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
                  baselines: tuple[str, ...] | torch.Tensor = ("zeros", "blur", "mean"),
                  samples: int = 16, noise: float = 0.0, seed: int = 0,
                  batch_size: int = BATCH, normalize: str = "max") -> Heatmaps:
    """GradientSHAP maps (module docstring); ``baselines``: names of baselines made from
    each image, or a tensor (K, C, H, W) of reference images shared by all; ``noise``: SD
    of the noise added to the image, as a fraction of its value range (0: none)."""
    samples = check_positive("samples", samples)
    if not 0 <= noise < 10:
        raise NetscopeError(f"GradientSHAP: noise must be a fraction of the input's range "
                            f">= 0 (e.g. 0.05), got {noise!r}.")
    refs = baseline_sets(x, baselines)
    n, k = refs.shape[:2]
    span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, 1, 1, 1)
    idx, alpha, eps = [], [], []
    for i in range(n):
        gen = torch.Generator().manual_seed(seed)
        idx.append(torch.randint(k, (samples,), generator=gen))
        alpha.append(torch.rand(samples, generator=gen, dtype=torch.float64))
        eps.append(torch.randn((samples, *x.shape[1:]), generator=gen, dtype=torch.float64)
                   * noise * float(span[i]))
    return gradient_shap_draws(model, x, targets, refs, torch.stack(idx), torch.stack(alpha),
                               torch.stack(eps) if noise > 0 else None, batch_size,
                               normalize)


def gradient_shap_draws(model: nn.Module, x: torch.Tensor, targets: TargetLike,
                        refs: torch.Tensor, idx: torch.Tensor, alpha: torch.Tensor,
                        eps: torch.Tensor | None = None, batch_size: int = BATCH,
                        normalize: str = "max") -> Heatmaps:
    """GradientSHAP on given draws, per image i and sample s: baseline ``refs[i, idx[i,
    s]]``, point ``alpha[i, s]`` of the way from it to x_i + ``eps[i, s]`` (another
    library's samples give its result)."""
    n, s = idx.shape
    with capture(model, []):
        logits, ref_scores = two_outputs(model, x, refs.flatten(0, 1))
        t = resolve(logits, targets)
        drawn = class_scores(ref_scores, t.repeat_interleave(refs.shape[1]), "logit")
        drawn = drawn.view(n, -1).gather(1, idx.to(drawn.device))
        total = torch.zeros_like(x)
        for j in chunks(n * s, batch_size):
            img, smp = j // s, j % s
            xs = x[img] + (0 if eps is None else eps[img, smp].to(x.device, x.dtype))
            b = refs[img, idx[img, smp]]
            a = alpha[img, smp].to(x.device, x.dtype).view(-1, 1, 1, 1)
            g = input_grad(model, channels_last(a * xs + (1 - a) * b), t[img])
            total.index_add_(0, img.to(x.device), (xs - b) * g)
    attr = total / s
    delta = class_scores(logits, t, "logit") - drawn.mean(1)
    return Heatmaps(normalize_maps(reduced(attr, "abs-sum"), normalize), logits, t, t.labels,
                    "input", "gradient-shap", normalize, attributions=attr,
                    reduction="abs-sum", extras={"delta": delta})
