"""Infidelity (Yeh et al. 2019; Captum's ``infidelity`` with ``normalize=True``): how well
the map predicts the change of the target's score when the image is perturbed,
E[(beta <I, a> - (f(x) - f(x - I)))^2] over Gaussian perturbations I (SD ``noise`` in the
model's input units), with beta = E[<I, a> (f(x) - f(x - I))] / E[<I, a>^2] the best scale
of the map (maps are scaled to a maximum of 1 here, so only their shape is judged). The map
(at the input's size) is each pixel's attribution, shared by its colour channels; f is the
target's logit. LOWER is more faithful. The perturbed images go through the model in
batches of ``batch_size``."""

from __future__ import annotations

import torch

from netscope.vision.core.batched import batched_scores
from netscope.vision.metrics.faithfulness import input_maps
from netscope.vision.metrics.robustness import noise
from netscope.vision.metrics.scored import MetricInput, Scores


def infidelity_scores(inp: MetricInput, *, infidelity_samples: int,
                      infidelity_noise: float) -> Scores:
    """The registry's infidelity (module docstring)."""
    draws = noise(inp.x, infidelity_samples, "gaussian", infidelity_noise, inp.seed)
    return Scores({"infidelity": infidelity(inp, draws)})


def infidelity(inp: MetricInput, draws: torch.Tensor) -> torch.Tensor:
    """(N,) infidelity of ``inp.maps`` for perturbations ``draws`` (S, N, C, H, W)."""
    s, n = draws.shape[:2]
    a = input_maps(inp.maps, inp.x)
    along = (draws * a[None, :, None]).flatten(2).sum(2).double()  # <I, a>, (S, N)
    base = inp.x[None] - draws  # x - I
    flat = base.flatten(0, 1)
    both = torch.cat([inp.x, flat])
    scores = batched_scores(inp.model, lambda lo, hi: both[lo:hi], both.shape[0],
                            inp.targets.tile(s + 1), inp.batch_size, "logit").double()
    change = scores[:n][None] - scores[n:].view(s, n)  # f(x) - f(x - I)
    beta = (along * change).sum(0) / (along ** 2).sum(0).clamp(min=1e-300)
    beta = torch.where((along ** 2).sum(0) > 0, beta, torch.zeros_like(beta))
    return ((beta[None] * along - change) ** 2).mean(0)
