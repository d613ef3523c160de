"""DeepLIFT with the Rescale rule (Shrikumar et al. 2017), as Captum's ``DeepLift`` runs it.

Each element-wise activation module's backward is replaced by its multiplier
(f(x) - f(x')) / (x - x'), x' its input on the baseline (the gradient at x where |x - x'|
< 1e-10); linear layers keep their gradients. The attributions (x - x') times the modified
gradient sum to F(x) - F(x') exactly when every nonlinearity is such a module (ReLU
networks: the completeness the tests check). The baseline runs first without a graph,
each activation recording its input and output; then the image runs forward and backward
alone (Captum runs both as one doubled batch: twice the backward work). Activations called
as functions inside ``forward`` cannot be reached and keep their gradients
(``extras["completeness_error"]`` shows the cost).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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
    """y = f(x); backward: the gradient times (f(x) - f(x')) / (x - x'), x' and f(x') the
    activation's input and output on the baseline (the slope at x where they are equal)."""

    @staticmethod
    def forward(ctx, x, x_base, y_base, forward, slope):
        y = forward(x)
        dx = x - x_base
        ratio = torch.sub(y, y_base).div_(dx)  # in place: these tensors are the largest
        small = dx.abs_() < EPS
        if small.any():  # no difference to rescale: the activation's own slope at x
            torch.where(small, slope(x), ratio, out=ratio)
        ctx.save_for_backward(ratio)
        return y

    @staticmethod
    def backward(ctx, g):
        (ratio,) = ctx.saved_tensors
        return g * ratio, None, None, None, None


class _BaselineTape:
    """Each activation call's input and output on the baseline, recorded in a first pass
    (no graph) and handed, call by call, to the same activation in the image's pass."""

    def __init__(self) -> None:
        self.recording = True
        self.calls: dict[int, deque] = {}

    def forward(self, module: nn.Module, own):
        safe, slope = copying(own, module), slope_of(module, own)

        def run(inp: torch.Tensor) -> torch.Tensor:
            queue = self.calls.setdefault(id(module), deque())
            if self.recording:
                x_base = inp.detach() * 1.0  # kept: later in-place work must not change it
                y = safe(x_base)
                queue.append((x_base, y.detach()))
                return y
            if not queue or queue[0][0].shape != inp.shape:
                raise NetscopeError(
                    f"DeepLIFT pairs each activation call on the image with the same call on "
                    f"the baseline; {type(module).__name__} ran differently on the two (the "
                    f"model's path depends on its input's values), so there is no pair.")
            x_base, y_base = queue.popleft()
            return _Rescale.apply(inp, x_base, y_base, safe, slope)
        return run

    def unused(self) -> int:
        return sum(len(q) for q in self.calls.values())


def slope_of(module: nn.Module, own) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> the activation's derivative at x, as autograd gives it (0 at a kink)."""
    if type(module) is nn.ReLU:
        return lambda x: (x > 0).to(x.dtype)
    if type(module) is nn.ReLU6:
        return lambda x: ((x > 0) & (x < 6)).to(x.dtype)

    safe = copying(own, module)

    def by_autograd(x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            xg = x.detach().clone().requires_grad_(True)
            return torch.autograd.grad(safe(xg).sum(), xg)[0]
    return by_autograd


def copying(own, module: nn.Module):
    """``own`` on a copy of its input where the module works in place (the input is
    needed again for the multiplier)."""
    return (lambda inp: own(inp * 1.0)) if getattr(module, "inplace", False) else own


@contextmanager
def rescaled(model: nn.Module) -> Iterator[tuple[_BaselineTape, int]]:
    """Every element-wise activation module records its baseline calls, then (after
    ``tape.recording = False``) follows the Rescale rule; yields the tape and how many."""
    tape = _BaselineTape()
    with swapped_forwards(model, ACTIVATIONS, tape.forward) as n:
        yield tape, n


@checked_images
def deeplift(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
             baseline: str | torch.Tensor = "zeros", normalize: str = "max") -> Heatmaps:
    """DeepLIFT (Rescale) maps; signed attributions (N, C, H, W) in ``attributions``;
    ``extras``: per image ``delta`` = F(x) - F(x') and ``completeness_error``. The baseline
    runs first without a graph, recording every activation's input and output; the image
    then runs forward and backward alone (Captum runs both as one doubled batch, forward
    and backward: twice the backward work for the same numbers)."""
    base = baseline_like(x, baseline)
    with capture(model, []), rescaled(model) as (tape, swapped):
        if swapped == 0:
            raise NetscopeError("DeepLIFT rescales activation modules (nn.ReLU, ReLU6, "
                                "Sigmoid, Tanh, ...); this model has none that it can "
                                "reach (activations called as functions are not).")
        with torch.no_grad():
            base_out = model(base.detach())
        tape.recording = False
        xi = x.detach().clone().requires_grad_(True)
        y = model(xi)  # the rescaled modules compute their usual values going forward
        if tape.unused():
            raise NetscopeError("DeepLIFT pairs each activation call on the image with the "
                                "same call on the baseline; the model made fewer calls on "
                                "the image (its path depends on its input's values).")
        out = detached(y)
        t = resolve(out, targets)
        score = t.score(y)
        delta = score.detach() - t.score(detached(base_out))
        (grad,) = torch.autograd.grad(score.sum(), xi)
    attr = (x - base) * grad
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
    baseline) pair runs in one DeepLIFT batch; ``extras["delta"]`` = F(x) - mean F(b)."""
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
