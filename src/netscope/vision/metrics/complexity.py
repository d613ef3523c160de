"""How concentrated a map is, as Quantus 0.6 scores it (on the map at the input's size):
sparseness, the Gini index of the map's values (Chalasani et al. 2020; 1e-7 added to every
value as Quantus does, so an all-zero map scores 0; HIGHER = sparser), and complexity, the
entropy of the map as a distribution over pixels (Bhatt et al. 2020; LOWER = simpler). They
say how easy a map is to read, not whether it is faithful: shown, not ranked."""

from __future__ import annotations

import torch

from netscope.vision.metrics.faithfulness import input_maps
from netscope.vision.metrics.scored import MetricInput, Scores

SHIFT = 1e-7  # Quantus' offset in the Gini index
LOG_EPS = 1e-12  # Quantus' offset inside the entropy's logarithm


def sparseness(a: torch.Tensor) -> torch.Tensor:
    """Gini index of each row of non-negative values (N, P) -> (N,)."""
    v = torch.sort(a + SHIFT, dim=1).values
    n = v.shape[1]
    i = torch.arange(1, n + 1, dtype=v.dtype, device=v.device)
    return ((2 * i - n - 1) * v).sum(1) / (n * v.sum(1))


def entropy(a: torch.Tensor) -> torch.Tensor:
    """Entropy of each row of non-negative values, as a distribution (N, P) -> (N,); an
    all-zero row has none to spread: 0."""
    total = a.sum(1, keepdim=True)
    p = torch.where(total > 0, a / total.clamp(min=1e-300), torch.zeros_like(a))
    return -(p * torch.log(p + LOG_EPS)).sum(1)


def complexity_scores(inp: MetricInput) -> Scores:
    """The registry's complexity metric (module docstring)."""
    a = input_maps(inp.maps, inp.x).flatten(1).double().abs()
    return Scores({"sparseness": sparseness(a), "complexity": entropy(a)})
