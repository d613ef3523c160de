"""Gradient ascent in input space: pictures that excite a filter or a class.

Each step takes the gradient of the objective with respect to the picture's parameters and
divides it by its root-mean-square (the normalized-gradient trick), so the step size means
the same thing at every layer. The parameters are the pixels themselves or scaled Fourier
coefficients in a decorrelated colour basis (``parametrize.py``). Optional regularizers make
the pictures natural: random shifts, rotations and rescaling before each step
(``augment.py``), a Gaussian blur every few steps, total variation and L2 penalties, and
multi-scale octaves (optimize small, upsample, continue).

Many filters are optimized at once, one image per filter in one batch; each image starts from
its own seed (seed, channel), so a filter's picture does not depend on which other filters
share the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.capture import LayerRef, capture, count_calls, run_until
from netscope.vision.core.device import model_device
from netscope.vision.core.fastpath import truncated
from netscope.vision.core.memory import check_ascent_memory
from netscope.vision.core.targets import class_output
from netscope.vision.features import augment
from netscope.vision.features.diversity import gram_similarity
from netscope.vision.features.parametrize import PARAMETRIZATIONS, ImageParam, image_param
from netscope.vision.features.presets import PRESETS
from netscope.vision.models.classes import class_label
from netscope.vision.models.zoo import Preprocess


@dataclass(frozen=True)
class AscentConfig:
    steps: int = 40
    lr: float | None = None  # step on the RMS-normalized gradient; None: the preset's
    size: int = 128
    noise: float = 0.1  # SD of the starting noise around grey, in [0, 1] pixel units
    jitter: int = 0  # max random shift in pixels per step
    blur_every: int = 0  # Gaussian blur every N steps (0: never; pixel parametrization)
    blur_sigma: float = 0.5
    tv: float = 0.0  # total-variation penalty weight
    l2: float = 0.0  # L2 penalty weight on the (normalized) image
    octaves: int = 1  # pixel parametrization only
    octave_scale: float = 1.4
    seed: int = 0
    param: str = "pixel"  # "pixel", "fourier" or "phase" (see parametrize.py)
    rotate: float = 0.0  # max random rotation per step, degrees
    scale_jitter: float = 0.0  # max random relative rescaling per step

    def __post_init__(self) -> None:
        if self.steps < 1 or self.size < 8 or self.octaves < 1:
            raise NetscopeError("ascent needs steps >= 1, size >= 8 and octaves >= 1.")
        if self.param not in PARAMETRIZATIONS:
            raise NetscopeError(f"unknown parametrization {self.param!r}: use one of "
                                f"{', '.join(PARAMETRIZATIONS)}.")
        if self.param != "pixel" and (self.octaves > 1 or self.blur_every):
            raise NetscopeError(f"octaves and blur work on the pixel parametrization; the "
                                f"{self.param} one is multi-scale and smooth already: drop "
                                f"--octaves/--blur-every or use --param pixel.")
        wrong = [f"{name} = {value}" for name, value, ok in (
            ("jitter", self.jitter, self.jitter >= 0), ("rotate", self.rotate, self.rotate >= 0),
            ("scale_jitter", self.scale_jitter, 0 <= self.scale_jitter < 1)) if not ok]
        if wrong:
            raise NetscopeError(f"ascent needs jitter >= 0, rotate >= 0 and 0 <= scale_jitter "
                                f"< 1; got {', '.join(wrong)}.")
        if self.lr is None:
            object.__setattr__(self, "lr", PRESETS[self.param]["lr"])
        bad = [f"{name} = {value}" for name, value in (
            ("lr", self.lr), ("tv", self.tv), ("l2", self.l2), ("noise", self.noise))
            if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0)]
        if bad:
            raise NetscopeError(f"ascent needs a finite lr > 0 and finite tv, l2, noise >= 0; "
                                f"got {', '.join(bad)}.")


@dataclass
class AscentResult:
    images: torch.Tensor  # (N, 3, H, W) in [0, 1]
    history: torch.Tensor  # (steps, N) objective before each step
    labels: list[str]

    def __repr__(self) -> str:
        n, _, h, w = self.images.shape
        shown = ", ".join(self.labels[:8]) + (", ..." if len(self.labels) > 8 else "")
        return (f"AscentResult({n} pictures {h}x{w}, {self.history.shape[0]} steps: "
                f"{shown})")

    def _repr_png_(self) -> bytes:
        from netscope.render.notebook import pictures_png

        return pictures_png(self.images.detach().float().permute(0, 2, 3, 1).cpu().numpy(),
                            self.labels)


def _dtype(model: nn.Module) -> torch.dtype:
    return next((p.dtype for p in model.parameters()), torch.float32)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma))
    k = torch.exp(-(torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device) ** 2)
                  / (2 * sigma**2))
    k = (k / k.sum()).view(1, 1, -1)
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"),
                 k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"),
                    k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _tv(x: torch.Tensor) -> torch.Tensor:
    return ((x[..., 1:, :] - x[..., :-1, :]).abs().mean((1, 2, 3))
            + (x[..., :, 1:] - x[..., :, :-1]).abs().mean((1, 2, 3)))


Progress = Callable[[int, int, torch.Tensor], None]  # (steps done, all steps, objective)


def ascend(objective: Callable[[torch.Tensor], torch.Tensor], param: ImageParam,
           seeds: Sequence[int], cfg: AscentConfig,
           progress: Progress | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximize ``objective(input)`` (one value per image) over the parameters of one
    picture per seed; returns pictures in [0, 1] and the objective's history (steps x N)."""
    p = param.init(seeds, cfg.noise)
    history = []
    for octave in range(cfg.octaves):
        if octave:  # pixel parametrization: the parameters are the picture
            size = int(round(p.shape[-1] * cfg.octave_scale))
            p = F.interpolate(p, size=(size, size), mode="bilinear", align_corners=False)
        for step in range(cfg.steps):
            d = augment.draw(cfg.seed * 7919 + octave * 1009 + step, cfg.jitter, cfg.rotate,
                             cfg.scale_jitter)
            p = p.detach().requires_grad_(True)
            x = param.to_input(p)
            # channels-last runs convolutions about 2.5x faster on CPU (oneDNN's layout)
            values = objective(augment.apply(x, d).contiguous(memory_format=torch.channels_last))
            loss = values.sum()
            if cfg.l2:
                loss = loss - cfg.l2 * (x**2).mean((1, 2, 3)).sum()
            if cfg.tv:
                loss = loss - cfg.tv * _tv(x).sum()
            (g,) = torch.autograd.grad(loss, p)
            dims = tuple(range(1, g.dim()))
            g = g / (g.pow(2).mean(dims, keepdim=True).sqrt() + 1e-8)
            history.append(values.detach())
            if progress is not None:
                progress(len(history), cfg.steps * cfg.octaves, history[-1])
            with torch.no_grad():
                p = p + cfg.lr * g
                if cfg.blur_every and (step + 1) % cfg.blur_every == 0:
                    p = _blur(p, cfg.blur_sigma)
                p = param.project(p)
    with torch.no_grad():
        return param.to_image(p), torch.stack(history)


def _start(model: nn.Module, pre: Preprocess, cfg: AscentConfig, ids: list[int],
           upto: str | None = None,
           spectrum=None) -> tuple[ImageParam, list[int], torch.Tensor]:
    """The parametrization, one seed per picture (seed, id), and a one-image probe input;
    refuses first when the pictures would not fit in memory."""
    final = round(cfg.size * cfg.octave_scale ** (cfg.octaves - 1))
    check_ascent_memory(model, pre.size, final, len(ids), upto)
    param = image_param(cfg.param, pre, cfg.size, _dtype(model), model_device(model), spectrum)
    seeds = [cfg.seed * 100_003 + i for i in ids]
    return param, seeds, param.to_input(param.init(seeds[:1], cfg.noise)).detach()


OBJECTIVES = ("mean", "center")


def visualize_filters(model: nn.Module, layer: str | LayerRef, channels: Sequence[int],
                      pre: Preprocess, cfg: AscentConfig = AscentConfig(),
                      fast: bool = True, objective: str = "mean",
                      progress: Progress | None = None, *, copies: int = 1,
                      diversity: float = 0.0, spectrum=None) -> AscentResult:
    """One picture per channel of ``layer`` maximizing its mean activation, all in one batch.

    ``fast`` runs a traced copy of the model cut after the layer, with batch norm and
    symmetric padding folded into the convolutions (``fastpath.truncated``); models that
    cannot be traced use forward hooks that stop the pass at the layer.

    ``objective``: ``mean`` maximizes the channel's mean over the feature map (the pattern
    fills the picture); ``center`` maximizes the one unit at the map's centre (the feature
    appears once, inside that unit's receptive field).

    ``copies`` pictures per channel (channel-major order), pushed apart when ``diversity``
    > 0 (``diversity.py``); ``spectrum``: the amplitude spectrum the phase parametrization
    keeps."""
    if copies < 1 or diversity < 0 or not math.isfinite(diversity):
        raise NetscopeError(f"copies must be at least 1 and diversity a finite number >= 0; "
                            f"got copies = {copies}, diversity = {diversity}.")
    if objective not in OBJECTIVES:
        raise NetscopeError(f"unknown objective {objective!r}: use one of "
                            f"{', '.join(OBJECTIVES)}.")
    channels = [int(c) for c in channels]
    if not channels:
        raise NetscopeError("give at least one channel to visualize.")
    shown = LayerRef.parse(layer)
    ids = channels if copies == 1 else [c * 1_000_003 + j for c in channels
                                        for j in range(copies)]
    param, seeds, probe = _start(model, pre, cfg, ids, shown.name, spectrum)
    calls = count_calls(model, shown, probe)
    if calls == 0:
        raise NetscopeError(f"layer {shown} did not run in the forward pass.")
    ref = shown if shown.call >= 0 else LayerRef(shown.name, shown.port, calls - 1)
    # the traced copy is cut after the module's only call; reused modules keep the hooks
    cut = truncated(model, ref.name) if fast and calls == 1 and ref.port == "output" else None
    index = torch.tensor(channels, device=probe.device).repeat_interleave(copies)
    where = " (centre unit)" if objective == "center" else ""
    labels = [f"{shown} channel {c}{where}" + (f" #{j}" if copies > 1 else "")
              for c in channels for j in range(copies)]
    with capture(model, [ref], stop=True) as rec:
        run_until(model, probe)
        _check_channels(rec[ref], ref, channels)
        if objective == "center" and rec[ref].dim() != 4:
            raise NetscopeError(f"layer {shown} has no spatial grid (output shape "
                                f"{tuple(rec[ref].shape)}): use objective 'mean'.")

        def goal(x: torch.Tensor) -> torch.Tensor:
            if cut is not None:
                A = cut(x)
            else:
                rec.clear()
                run_until(model, x)
                A = rec[ref]
            maps = A[torch.arange(A.shape[0], device=A.device), index]
            if objective == "center":
                values = maps[:, maps.shape[1] // 2, maps.shape[2] // 2]
            else:
                values = maps.flatten(1).mean(1)
            if diversity and copies > 1:
                values = values - diversity * values.detach().abs() * gram_similarity(A, copies)
            return values

        images, history = ascend(goal, param, seeds, cfg, progress)
    return AscentResult(images, history, labels)


def _check_channels(A: torch.Tensor, ref: LayerRef, channels: list[int]) -> None:
    n_channels = A.shape[1] if A.dim() >= 2 else 0
    bad = [c for c in channels if not 0 <= c < n_channels]
    if bad:
        raise NetscopeError(f"layer {ref} has {n_channels} channels; channel {bad[0]} "
                            f"does not exist.")


def visualize_classes(model: nn.Module, classes: Sequence[int], pre: Preprocess,
                      cfg: AscentConfig = AscentConfig(l2=1e-3),
                      names: Sequence[str] | None = None, fast: bool = True,
                      progress: Progress | None = None) -> AscentResult:
    """Class-model visualization (Simonyan et al. 2013): maximize the class logit minus an
    L2 penalty on the image, one image per class in one batch (``fast``: a traced copy with
    batch norm folded, as for filters)."""
    classes = [int(c) for c in classes]
    param, seeds, probe = _start(model, pre, cfg, classes)
    index = torch.tensor(classes, device=probe.device)
    simple = truncated(model, None) if fast else None
    with capture(model, []):
        n_out = class_output(model(probe)).shape[1]
        bad = [c for c in classes if not 0 <= c < n_out]
        if bad:
            raise NetscopeError(f"class index {bad[0]} is out of range: the model has {n_out} "
                                f"outputs (0..{n_out - 1}).")
        net = simple if simple is not None else model

        def objective(x: torch.Tensor) -> torch.Tensor:
            return net(x)[torch.arange(x.shape[0], device=x.device), index]

        images, history = ascend(objective, param, seeds, cfg, progress)
    labels = [class_label(names, c) for c in classes]
    return AscentResult(images, history, labels)
