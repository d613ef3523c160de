"""Gradient ascent in input space: pictures that excite a filter or a class.

Each step takes the gradient of the objective with respect to the image and divides it by
its root-mean-square (the normalized-gradient trick), so the step size means the same thing
at every layer. Optional regularizers make the pictures natural: random jitter (the same
shift for the whole batch each step), a Gaussian blur every few steps, total variation and
L2 penalties, and multi-scale octaves (optimize small, upsample, continue).

Many filters are optimized at once, one image per filter in one batch; each image starts from
grey plus noise drawn from its own seed (seed, channel), so a filter's picture does not
depend on which other filters share the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.capture import LayerRef, capture, count_calls, run_until
from netscope.vision.fastpath import truncated
from netscope.vision.models import Preprocess


@dataclass(frozen=True)
class AscentConfig:
    steps: int = 40
    lr: float = 0.1  # step in normalized-input units, applied to the RMS-normalized gradient
    size: int = 128
    noise: float = 0.1  # SD of the starting noise around grey, in [0, 1] pixel units
    jitter: int = 0  # max random shift in pixels per step
    blur_every: int = 0  # Gaussian blur every N steps (0: never)
    blur_sigma: float = 0.5
    tv: float = 0.0  # total-variation penalty weight
    l2: float = 0.0  # L2 penalty weight on the (normalized) image
    octaves: int = 1
    octave_scale: float = 1.4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.size < 8 or self.octaves < 1:
            raise NetscopeError("ascent needs steps >= 1, size >= 8 and octaves >= 1.")


@dataclass
class AscentResult:
    images: torch.Tensor  # (N, 3, H, W) in [0, 1]
    history: torch.Tensor  # (steps, N) objective before each step
    labels: list[str]


def _start(model: nn.Module, seeds: Sequence[int], cfg: AscentConfig,
           pre: Preprocess) -> torch.Tensor:
    """Grey plus seeded noise per image, in the model's dtype."""
    imgs = []
    for s in seeds:
        gen = torch.Generator().manual_seed(s)
        imgs.append(0.5 + cfg.noise * torch.randn(3, cfg.size, cfg.size, generator=gen))
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    return pre.normalize(torch.stack(imgs).clamp(0, 1).to(dtype))


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma))
    k = torch.exp(-(torch.arange(-radius, radius + 1, dtype=x.dtype) ** 2) / (2 * sigma**2))
    k = (k / k.sum()).view(1, 1, -1)
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"),
                 k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"),
                    k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _tv(x: torch.Tensor) -> torch.Tensor:
    return ((x[..., 1:, :] - x[..., :-1, :]).abs().mean((1, 2, 3))
            + (x[..., :, 1:] - x[..., :, :-1]).abs().mean((1, 2, 3)))


def ascend(objective: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor,
           pre: Preprocess, cfg: AscentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximize ``objective(x)`` (one value per image) from ``x0``; returns images in [0, 1]
    and the objective's history (steps x N)."""
    x = x0.clone()
    lo = pre.normalize(torch.zeros(1, 3, 1, 1, dtype=x0.dtype))
    hi = pre.normalize(torch.ones(1, 3, 1, 1, dtype=x0.dtype))
    history = []
    for octave in range(cfg.octaves):
        if octave:
            size = int(round(x.shape[-1] * cfg.octave_scale))
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        for step in range(cfg.steps):
            gen = torch.Generator().manual_seed(cfg.seed * 7919 + octave * 1009 + step)
            dy, dx = (torch.randint(-cfg.jitter, cfg.jitter + 1, (2,), generator=gen).tolist()
                      if cfg.jitter else (0, 0))
            xs = torch.roll(x, (dy, dx), (2, 3)).requires_grad_(True)
            # channels-last runs convolutions about 2.5x faster on CPU (oneDNN's layout)
            values = objective(xs.contiguous(memory_format=torch.channels_last))
            loss = values.sum()
            if cfg.l2:
                loss = loss - cfg.l2 * (xs**2).mean((1, 2, 3)).sum()
            if cfg.tv:
                loss = loss - cfg.tv * _tv(xs).sum()
            (g,) = torch.autograd.grad(loss, xs)
            g = torch.roll(g, (-dy, -dx), (2, 3))
            g = g / (g.pow(2).mean((1, 2, 3), keepdim=True).sqrt() + 1e-8)
            history.append(values.detach())
            with torch.no_grad():
                x = x + cfg.lr * g
                if cfg.blur_every and (step + 1) % cfg.blur_every == 0:
                    x = _blur(x, cfg.blur_sigma)
                x = torch.maximum(torch.minimum(x, hi), lo)  # stay a valid picture
    return pre.denormalize(x).clamp(0, 1), torch.stack(history)


def visualize_filters(model: nn.Module, layer: str | LayerRef, channels: Sequence[int],
                      pre: Preprocess, cfg: AscentConfig = AscentConfig(),
                      fast: bool = True) -> AscentResult:
    """One picture per channel of ``layer`` maximizing its mean activation, all in one batch.

    ``fast`` runs a traced copy of the model cut after the layer, with batch norm and
    symmetric padding folded into the convolutions (``fastpath.truncated``); models that
    cannot be traced use forward hooks that stop the pass at the layer."""
    channels = [int(c) for c in channels]
    if not channels:
        raise NetscopeError("give at least one channel to visualize.")
    x0 = _start(model, [cfg.seed * 100_003 + c for c in channels], cfg, pre)
    shown = LayerRef.parse(layer)
    calls = count_calls(model, shown, x0[:1])
    if calls == 0:
        raise NetscopeError(f"layer {shown} did not run in the forward pass.")
    ref = shown if shown.call >= 0 else LayerRef(shown.name, shown.port, calls - 1)
    # the traced copy is cut after the module's only call; reused modules keep the hooks
    cut = truncated(model, ref.name) if fast and calls == 1 and ref.port == "output" else None
    index = torch.tensor(channels)
    labels = [f"{shown} channel {c}" for c in channels]
    with capture(model, [ref], stop=True) as rec:
        run_until(model, x0[:1])
        _check_channels(rec[ref], ref, channels)

        def objective(x: torch.Tensor) -> torch.Tensor:
            if cut is not None:
                A = cut(x)
            else:
                rec.clear()
                run_until(model, x)
                A = rec[ref]
            return A[torch.arange(A.shape[0]), index].flatten(1).mean(1)

        images, history = ascend(objective, x0, pre, cfg)
    return AscentResult(images, history, labels)


def _check_channels(A: torch.Tensor, ref: LayerRef, channels: list[int]) -> None:
    n_channels = A.shape[1] if A.dim() >= 2 else 0
    bad = [c for c in channels if not 0 <= c < n_channels]
    if bad:
        raise NetscopeError(f"layer {ref} has {n_channels} channels; channel {bad[0]} "
                            f"does not exist.")


def visualize_classes(model: nn.Module, classes: Sequence[int], pre: Preprocess,
                      cfg: AscentConfig = AscentConfig(l2=1e-3),
                      names: Sequence[str] | None = None, fast: bool = True) -> AscentResult:
    """Class-model visualization (Simonyan et al. 2013): maximize the class logit minus an
    L2 penalty on the image, one image per class in one batch (``fast``: a traced copy with
    batch norm folded, as for filters)."""
    classes = [int(c) for c in classes]
    x0 = _start(model, [cfg.seed * 100_003 + c for c in classes], cfg, pre)
    index = torch.tensor(classes)
    simple = truncated(model, None) if fast else None
    with capture(model, []):
        n_out = model(x0[:1]).shape[1]
        bad = [c for c in classes if not 0 <= c < n_out]
        if bad:
            raise NetscopeError(f"class index {bad[0]} is out of range: the model has {n_out} "
                                f"outputs (0..{n_out - 1}).")
        net = simple if simple is not None else model

        def objective(x: torch.Tensor) -> torch.Tensor:
            return net(x)[torch.arange(x.shape[0]), index]

        images, history = ascend(objective, x0, pre, cfg)
    labels = [names[c] if names else f"class {c}" for c in classes]
    return AscentResult(images, history, labels)
