"""How much a map moves when the image barely does (robustness, Quantus 0.6 / Captum):

- max-sensitivity (Yeh et al. 2019; Captum's ``sensitivity_max``, Quantus'
  ``MaxSensitivity``): the largest ||a(x + e) - a(x)|| / ||a(x)|| over ``samples`` noise
  draws e, uniform in [-radius, radius] on every input value (Captum's defaults: radius
  0.02, 10 samples; Quantus draws 200 with radius 0.2);
- local Lipschitz estimate (Alvarez-Melis & Jaakkola 2018, Quantus'
  ``LocalLipschitzEstimate``): the largest ||a(x + e) - a(x)|| / ||e|| over Gaussian draws
  e (SD 0.1, Quantus' default).

Maps are compared at the input's size, as scaled for the evaluation (non-negative, maximum
1); the perturbed image explains the same class. LOWER is more robust. Robustness is not
faithfulness: shown, not ranked. Each sample recomputes the method's maps, in batches of
``batch_size`` perturbed images."""

from __future__ import annotations

import torch

from netscope.vision.metrics.faithfulness import input_maps
from netscope.vision.metrics.scored import MetricInput, Scores

EPS = 1e-10  # Quantus' guard in the Lipschitz ratio


def noise(x: torch.Tensor, samples: int, kind: str, size: float, seed: int) -> torch.Tensor:
    """(samples, N, C, H, W) draws: 'uniform' in [-size, size] or 'gaussian' with SD size,
    from a generator seeded by ``seed`` (the same draws on every run)."""
    g = torch.Generator().manual_seed(seed)
    shape = (samples, *x.shape)
    draw = (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * size \
        if kind == "uniform" else torch.randn(shape, generator=g, dtype=torch.float64) * size
    return draw.to(dtype=x.dtype, device=x.device)


def perturbed_maps(inp: MetricInput, draws: torch.Tensor) -> torch.Tensor:
    """(samples, N, H, W) maps of x + each draw, at the input's size."""
    s, n = draws.shape[:2]
    xs = (inp.x[None] + draws).flatten(0, 1)
    targets = inp.targets.tile(s)
    out = []
    for a in range(0, xs.shape[0], inp.batch_size):
        b = min(a + inp.batch_size, xs.shape[0])
        out.append(input_maps(inp.explain(inp.model, xs[a:b], targets[a:b]), xs[a:b]))
    return torch.cat(out).view(s, n, *inp.x.shape[-2:])


def max_sensitivity_scores(inp: MetricInput, *, sensitivity_samples: int,
                           sensitivity_radius: float) -> Scores:
    """The registry's max-sensitivity (module docstring)."""
    draws = noise(inp.x, sensitivity_samples, "uniform", sensitivity_radius, inp.seed)
    a = input_maps(inp.maps, inp.x).flatten(1)
    moved = (perturbed_maps(inp, draws).flatten(2) - a[None]).norm(dim=2)
    size = a.norm(dim=1)
    ratio = moved / torch.where(size > 0, size, torch.ones_like(size))[None]
    return Scores({"max_sensitivity": ratio.amax(0).double()})


def local_lipschitz_scores(inp: MetricInput, *, lipschitz_samples: int,
                           lipschitz_sd: float) -> Scores:
    """The registry's local Lipschitz estimate (module docstring)."""
    draws = noise(inp.x, lipschitz_samples, "gaussian", lipschitz_sd, inp.seed)
    a = input_maps(inp.maps, inp.x).flatten(1)
    moved = (perturbed_maps(inp, draws).flatten(2) - a[None]).norm(dim=2)
    ratio = moved / (draws.flatten(2).norm(dim=2) + EPS)
    return Scores({"local_lipschitz": ratio.amax(0).double()})
