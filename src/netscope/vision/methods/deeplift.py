"""DeepLIFT with the Rescale rule (Shrikumar et al. 2017), as Captum's ``DeepLift`` runs it.

Each element-wise activation module's backward is replaced by its multiplier
(f(x) - f(x')) / (x - x'), x' its input on the baseline (the gradient at x where |x - x'|
< 1e-10); linear layers keep their gradients. The attributions (x - x') times the modified
gradient sum to F(x) - F(x') exactly when every nonlinearity is such a module (ReLU
networks: the completeness the tests check). Image and baseline run as one batch, so the
baseline's activations are read in the same pass (one forward and one backward pass of a
batch twice the size, as Captum's). Activations called as functions inside
``forward`` cannot be reached and keep their gradients (``extras["completeness_error"]``
shows the cost).
"""

from __future__ import annotations

import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.baselines import baseline_like, baseline_sets
from netscope.vision.core.capture import capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps, reduced
from netscope.vision.core.module_swap import swapped_forwards
from netscope.vision.core.targets import TargetLike, detached, resolve

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.Sigmoid, nn.Tanh, nn.SiLU,
               nn.GELU, nn.Hardswish, nn.Softplus)
EPS = 1e-10


class _Rescale(torch.autograd.Function):
    """y = f(x) on a batch whose second half is the first half's baselines; backward: the
    first half's gradient times (f(x) - f(x')) / (x - x'), the baselines' none."""

    @staticmethod
    def forward(ctx, x, forward):
        y = forward(x * 1.0)  # a copy: in-place activations change it
        n = x.shape[0] // 2
        dx, dy = x[:n] - x[n:], y[:n] - y[n:]
        small = dx.abs() < EPS
        ratio = dy / torch.where(small, torch.ones_like(dx), dx)
        if small.any():  # no difference to rescale: the activation's own slope at x
            with torch.enable_grad():
                xg = x[:n].detach().requires_grad_(True)
                (slope,) = torch.autograd.grad(forward(xg * 1.0).sum(), xg)
            ratio = torch.where(small, slope, ratio)
        ctx.save_for_backward(ratio)
        return y

    @staticmethod
    def backward(ctx, g):
        (ratio,) = ctx.saved_tensors
        n = ratio.shape[0]
        return torch.cat([g[:n] * ratio, torch.zeros_like(g[n:])]), None


def rescaled(model: nn.Module):
    """Every element-wise activation module's backward follows the Rescale rule for the
    block; yields how many."""
    return swapped_forwards(model, ACTIVATIONS,
                            lambda m, own: lambda inp: _Rescale.apply(inp, own))


@checked_images
def deeplift(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
             baseline: str | torch.Tensor = "zeros", normalize: str = "max") -> Heatmaps:
    """DeepLIFT (Rescale) maps; signed attributions (N, C, H, W) in ``attributions``;
    ``extras``: per image ``delta`` = F(x) - F(x') and ``completeness_error``."""
    base = baseline_like(x, baseline)
    n = x.shape[0]
    with capture(model, []), rescaled(model) as swapped:
        if swapped == 0:
            raise NetscopeError("DeepLIFT rescales activation modules (nn.ReLU, ReLU6, "
                                "Sigmoid, Tanh, ...); this model has none that it can "
                                "reach (activations called as functions are not).")
        both = torch.cat([x, base]).detach().requires_grad_(True)
        y = model(both)  # the rescaled modules compute their usual values going forward
        out = detached(y)[:n]
        t = resolve(out, targets)
        score = t.score(y[:n])
        delta = score.detach() - t.score(detached(y)[n:])
        (grad,) = torch.autograd.grad(score.sum(), both)
    attr = (x - base) * grad[:n]
    gap = (attr.flatten(1).sum(1) - delta).abs()
    error = gap / torch.where(delta != 0, delta.abs(), torch.ones_like(delta))
    return Heatmaps(normalize_maps(reduced(attr, "abs-sum"), normalize), out, t, t.labels,
                    "input", "deeplift", attributions=attr, reduction="abs-sum",
                    extras={"delta": delta, "completeness_error": error})


@checked_images
def deeplift_shap(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
                  baselines: tuple[str, ...] | torch.Tensor = ("zeros", "blur", "mean"),
                  normalize: str = "max") -> Heatmaps:
    """DeepLIFT-SHAP (Lundberg & Lee 2017): DeepLIFT against each of several baselines,
    averaged (as Captum's ``DeepLiftShap``). ``baselines``: names of baselines made from each
    image, or a tensor (K, C, H, W) of reference images shared by all. Every (image,
    baseline) pair runs in one doubled batch; ``extras["delta"]`` = F(x) - mean F(b)."""
    n = x.shape[0]
    refs = baseline_sets(x, baselines)
    k = refs.shape[1]
    bases = refs.flatten(0, 1)  # pair (i, j): image i, baseline j
    with capture(model, []), torch.no_grad():
        t = resolve(detached(model(x)), targets)
    pairs = deeplift(model, x.repeat_interleave(k, 0), t.repeat_interleave(k),
                     baseline=bases, normalize=normalize)
    attr = pairs.attributions.view(n, k, *x.shape[1:]).mean(1)
    delta = pairs.extras["delta"].view(n, k).mean(1)
    gap = (attr.flatten(1).sum(1) - delta).abs()
    error = gap / torch.where(delta != 0, delta.abs(), torch.ones_like(delta))
    return Heatmaps(normalize_maps(reduced(attr, "abs-sum"), normalize), pairs.logits[::k], t,
                    t.labels, "input", "deeplift-shap", attributions=attr, reduction="abs-sum",
                    extras={"delta": delta, "completeness_error": error})
