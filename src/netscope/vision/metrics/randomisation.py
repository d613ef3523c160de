"""Randomisation tests of Quantus 0.6 (Hedström et al. 2023, "Sanity checks revisited"),
beside the cascading randomization sanity check (``metrics.sanity``):

- eMPRT, efficient model parameter randomisation: the relative change of the map's
  entropy when every parameter group of a copy of the model is re-initialized,
  (H(random) - H(trained)) / H(trained), H the entropy of a 100-bin histogram of the map's
  values (Quantus' discrete entropy and default bins). A map that explains the model turns
  into noise: HIGHER is better.
- sMPRT, smooth MPRT: the cascading randomization of the sanity check with each map
  denoised first, the mean of ``smprt_samples`` maps of the image plus Gaussian noise (SD
  ``smprt_noise`` times the image's range; the last draw noise-free, as Quantus), so that
  gradient noise does not pass for dependence on the model. Spearman correlation with the
  trained model's denoised map once every group is re-initialized: LOWER is better.

The re-initialization is the sanity check's (each module's own initializer, from the head
down, seeded), not Quantus' bottom-up generator, so the randomized models differ; on the
same maps the scores are Quantus' (tests)."""

from __future__ import annotations

import copy

import numpy as np
import torch
from scipy.stats import entropy as scipy_entropy

from netscope.vision.metrics.faithfulness import input_maps
from netscope.vision.metrics.sanity import (
    Explain,
    cascading_randomization,
    parameter_groups,
    reinitialize,
)
from netscope.vision.metrics.scored import MetricInput, Scores

BINS = 100  # Quantus' default for eMPRT's discrete entropy


def histogram_entropy(maps: torch.Tensor, bins: int = BINS) -> torch.Tensor:
    """(N,) entropy of a ``bins``-bin histogram of each map's values (over its own range)."""
    rows = maps.detach().flatten(1).double().cpu().numpy()
    return torch.tensor([float(scipy_entropy(np.histogram(r, bins=bins)[0])) for r in rows],
                        dtype=torch.float64)


def randomized(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A copy of ``model`` with every parameter group re-initialized (the user's model is
    left as it was)."""
    twin = copy.deepcopy(model)
    for i, (_, modules) in enumerate(parameter_groups(twin)):
        reinitialize(modules, seed + i)
    return twin


def emprt_scores(inp: MetricInput) -> Scores:
    """The registry's eMPRT (module docstring)."""
    before = histogram_entropy(input_maps(inp.maps, inp.x))
    after_maps = inp.explain(randomized(inp.model, inp.seed), inp.x, inp.targets)
    after = histogram_entropy(input_maps(after_maps, inp.x))
    change = torch.where(before > 0, (after - before) / before.clamp(min=1e-300),
                         torch.zeros_like(before))  # a constant map: uninformative anyway
    return Scores({"emprt": change}, record={"entropy_trained": before.tolist(),
                                             "entropy_random": after.tolist()})


def smoothed(explain: Explain, samples: int, noise: float, seed: int) -> Explain:
    """``explain`` averaged over ``samples`` noisy copies of the images (the last one
    noise-free), then scaled to a maximum of 1; the same draws on every call."""
    def run(model, x, targets):
        dims = tuple(range(1, x.dim()))
        spread = noise * (x.amax(dims, keepdim=True) - x.amin(dims, keepdim=True))
        g = torch.Generator().manual_seed(seed)
        total = None
        for k in range(samples):
            eps = torch.zeros_like(x) if k == samples - 1 else \
                torch.randn(x.shape, generator=g, dtype=torch.float64).to(x) * spread
            maps = explain(model, x + eps, targets) / samples
            total = maps if total is None else total + maps
        top = total.flatten(1).abs().amax(1).clamp(min=1e-300)
        return (total / top.view(-1, *([1] * (total.dim() - 1)))).abs()
    return run


def smprt_scores(inp: MetricInput, *, smprt_samples: int, smprt_noise: float,
                 sanity_checkpoints: int) -> Scores:
    """The registry's sMPRT (module docstring)."""
    check = cascading_randomization(inp.model, inp.x,
                                    smoothed(inp.explain, smprt_samples, smprt_noise,
                                             inp.seed),
                                    inp.targets, sanity_checkpoints, inp.seed)
    return Scores({"smprt_spearman": torch.from_numpy(check.spearman[-1].copy())},
                  record={"stages": check.stages, "depth": check.depth,
                          "spearman": check.spearman.tolist()})
