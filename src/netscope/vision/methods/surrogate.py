"""LIME (Ribeiro et al. 2016) and KernelSHAP (Lundberg & Lee 2017) over segments: the
target's logit on images with random sets of segments kept (the rest replaced by the
baseline), fitted by a weighted linear model of which segments were kept; a segment's
coefficient is its attribution, painted on its pixels. As Captum's ``Lime`` and
``KernelShap``, with scikit-learn fitting the linear models:

- LIME: each segment kept with probability 1/2; each sample weighted by exp(-d^2 / (2 w^2))
  with d the cosine distance between the image and the perturbed image (w: the kernel
  width, 1); a Lasso (alpha 0.01) with an intercept.
- KernelSHAP: the full and the empty image first (weight 1e6, which pins the values to sum
  to F(x) - F(baseline)), then k segments kept with p(k) ~ (M - 1) / (k (M - k)) and the k
  chosen uniformly, weight 1 (the Shapley kernel, sampled), each coalition followed by its
  complement (paired sampling, Covert & Lee 2021: Captum draws them independently, and on
  EfficientNet-Lite0 its maps then hardly agree between two seeds, see BENCHMARKS.md);
  least squares with an intercept. On a model that adds one term per segment it returns
  each term exactly.

Each image draws its samples from its own generator seeded by ``seed`` (its map does not
depend on the other images of the batch); the cosine distances come from per-segment sums,
without making the images twice.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.baselines import baseline_like
from netscope.vision.core.batched import BATCH, check_positive
from netscope.vision.core.capture import capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps, reduced
from netscope.vision.core.targets import TargetLike, resolve
from netscope.vision.methods.coalitions import coalition_scores, painted
from netscope.vision.methods.segments import segments_of

PIN = 1e6  # KernelSHAP's weight on the full and the empty image (Captum's inf_weight)


@checked_images
def lime(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
         segments: str | torch.Tensor = "slic", cells: int = 50,
         baseline: str | torch.Tensor = "zeros", samples: int = 1000,
         kernel_width: float = 1.0, lasso_alpha: float = 0.01, seed: int = 0,
         batch_size: int = BATCH, normalize: str = "max") -> Heatmaps:
    """LIME's segment weights (module docstring)."""
    masks, draws = _draws(x, segments, cells, samples, seed, _bernoulli)
    return fitted(model, x, targets, masks, draws, "lime", baseline, batch_size, normalize,
                  kernel_width=kernel_width, alpha=lasso_alpha)


@checked_images
def kernel_shap(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
                segments: str | torch.Tensor = "slic", cells: int = 25,
                baseline: str | torch.Tensor = "zeros", samples: int = 600, seed: int = 0,
                batch_size: int = BATCH, normalize: str = "max") -> Heatmaps:
    """KernelSHAP's segment values (module docstring)."""
    if samples < 2:
        raise NetscopeError(f"KernelSHAP needs at least 2 samples (the full and the empty "
                            f"image come first), got {samples!r}.")
    masks, draws = _draws(x, segments, cells, samples, seed, _shapley_kernel)
    return fitted(model, x, targets, masks, draws, "kernel-shap", baseline, batch_size,
                  normalize)


def fitted(model: nn.Module, x: torch.Tensor, targets: TargetLike, masks: torch.Tensor,
           draws: list[torch.Tensor], kind: str, baseline: str | torch.Tensor = "zeros",
           batch_size: int = BATCH, normalize: str = "max", *, kernel_width: float = 1.0,
           alpha: float = 0.01) -> Heatmaps:
    """The surrogate fitted on given ``draws`` (per image (S, K_i) of 0/1: which segments
    are kept), as another library's samples; ``kind`` 'lime' or 'kernel-shap'."""
    base = baseline_like(x, baseline)
    with capture(model, []), torch.no_grad():
        logits = model(x)
    t = resolve(logits, targets)
    scores = coalition_scores(model, x, base, masks, draws, t, batch_size)
    coefs = []
    for i, (z, y) in enumerate(zip(draws, scores, strict=True)):
        if kind == "lime":
            w = _cosine_weights(x[i], base[i], masks[i], z, kernel_width)
        else:
            full = (z.sum(1) == 0) | (z.sum(1) == z.shape[1])
            w = torch.where(full, PIN, 1.0).double()
        coefs.append(_fit(z, y, w, kind, alpha))
    attr = painted(coefs, masks).to(x.dtype)[:, None].expand_as(x)
    heat = Heatmaps(normalize_maps(reduced(attr, "sum-relu"), normalize), logits, t, t.labels,
                    "input", kind, normalize, attributions=attr, reduction="sum-relu",
                    extras={"segments": masks})
    empty = [i for i, c in enumerate(coefs) if not bool((c > 0).any())]
    if empty:
        why = (f"the Lasso's L1 weight ({alpha:g}) zeroed them: lower lasso_alpha"
               if kind == "lime" else "more samples may find some")
        heat.warnings.append(f"{kind}: no segment raises the target in image(s) "
                             f"{', '.join(map(str, empty))}, so their maps are empty; {why}.")
    return heat


def _draws(x: torch.Tensor, segments, cells: int, samples: int, seed: int, draw):
    samples = check_positive("samples", samples)
    masks = segments_of(x, segments, cells)
    out = []
    for m in masks:
        gen = torch.Generator().manual_seed(seed)
        out.append(draw(int(m.max()) + 1, samples, gen))
    return masks, out


def _bernoulli(k: int, samples: int, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(samples, k, generator=gen) < 0.5).long()


def _shapley_kernel(k: int, samples: int, gen: torch.Generator) -> torch.Tensor:
    """The full and the empty coalition, then coalitions whose sizes are drawn by the
    Shapley kernel, each followed by its complement (paired sampling, Covert & Lee 2021)."""
    rows = torch.zeros(samples, k, dtype=torch.long)
    rows[0] = 1
    if k < 2:
        return rows
    sizes = torch.arange(1, k, dtype=torch.float64)
    p = (k - 1) / (sizes * (k - sizes))
    pairs = (max(samples - 2, 0) + 1) // 2
    size = 1 + torch.multinomial(p / p.sum(), max(pairs, 1), replacement=True, generator=gen)
    for j, s in enumerate(size.tolist()[:pairs]):
        z = torch.zeros(k, dtype=torch.long)
        z[torch.randperm(k, generator=gen)[:s]] = 1
        for r, row in ((2 + 2 * j, z), (3 + 2 * j, 1 - z)):
            if r < samples:
                rows[r] = row
    return rows


def _cosine_weights(x: torch.Tensor, base: torch.Tensor, mask: torch.Tensor,
                    z: torch.Tensor, width: float) -> torch.Tensor:
    """LIME's kernel on the cosine distance between x and each perturbed image, from
    per-segment sums of x*x, x*b and b*b (a kept segment shows x, a dropped one b)."""
    k = z.shape[1]

    def per_segment(v: torch.Tensor) -> torch.Tensor:
        return torch.zeros(k, dtype=torch.float64, device=v.device).index_add_(
            0, mask.flatten(), v.sum(0).flatten().double()).cpu()

    xx, xb, bb = per_segment(x * x), per_segment(x * base), per_segment(base * base)
    zd = z.double()
    dot = zd @ xx + (1 - zd) @ xb
    norm = (zd @ xx + (1 - zd) @ bb).clamp(min=0).sqrt() * xx.sum().sqrt()
    cos = torch.where(norm > 0, dot / norm.clamp(min=1e-300), torch.zeros_like(dot))
    return torch.exp(-((1 - cos) ** 2) / (2 * width ** 2))


def _fit(z: torch.Tensor, y: torch.Tensor, w: torch.Tensor, kind: str,
         alpha: float) -> torch.Tensor:
    """The surrogate's coefficients (one per segment) by scikit-learn."""
    from sklearn.linear_model import Lasso, LinearRegression

    model = Lasso(alpha=alpha) if kind == "lime" else LinearRegression()
    zn, yn, wn = (v.detach().cpu().double().numpy() for v in (z, y, w))
    if not np.isfinite(yn).all():
        raise NetscopeError(f"{kind}: the model gave non-finite scores on perturbed images; "
                            f"check the baseline.")
    model.fit(zn, yn, sample_weight=wn)
    return torch.from_numpy(np.asarray(model.coef_, dtype=np.float64))
