"""Where a classifier looks: saliency, SmoothGrad, CAM, the Grad-CAM family (guided variants:
``guided.py``).

The CAM family shares one pipeline: record the layer's activations A (N, K, h, w) and the
gradient of each image's target score with respect to them, let the method supply weights
alpha per channel (N, K, 1, 1) or per channel and position (N, K, h, w), then
map = ReLU(sum_k alpha_k A_k). Grad-CAM's weights are the spatial
mean of the gradient; Grad-CAM++ weights positive gradients by its alpha coefficients;
XGrad-CAM takes the activation-weighted mean of the gradient; LayerCAM weighs each position
by its positive gradient, HiResCAM by the gradient itself; CAM reads the weights from the
linear head. Eigen-CAM needs no gradient: the first principal direction of the activations.
Maps are divided by their maximum (``normalize="max"``, the Grad-CAM paper's convention) or
min-max scaled (``"minmax"``); an all-zero map stays zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.capture import LayerRef, capture
from netscope.vision.classes import class_label
from netscope.vision.models import find_layer
from netscope.vision.targets import (
    Resolved,
    TargetLike,
    as_target,
    batch_size,
    detached,
    resolve,
)
from netscope.vision.token_grid import Reshape, as_grid, layout_for

Targets = TargetLike  # a class (index, list, tensor, None: top-1) or any target kind
NORMALIZE = ("max", "minmax", "none")


@dataclass
class Heatmaps:
    """Maps at layer resolution (N, h, w), the model's output, and the class each map
    explains (``targets``; -1 for targets without a class), with the full target in
    ``target`` (``targets.Resolved``) when it is one."""

    maps: torch.Tensor
    logits: Any
    targets: torch.Tensor | Resolved
    layer: str
    method: str
    normalized: str = "max"
    warnings: list[str] = field(default_factory=list)  # what a careful user must know
    target: Resolved | None = None

    def __post_init__(self) -> None:
        if isinstance(self.targets, Resolved):
            self.target, self.targets = self.targets, self.targets.labels

    def upsampled(self, size: tuple[int, int]) -> torch.Tensor:
        """Bilinear upsampling to the input's (H, W), rescaled as the maps were."""
        up = F.interpolate(self.maps[:, None], size=size, mode="bilinear", align_corners=False)
        return normalize_maps(up[:, 0], self.normalized)


def resolve_targets(output: Any, targets: Targets) -> Resolved:
    """Per-image targets (``targets.resolve``); None means each image's own top-1 class."""
    return resolve(output, targets)


def normalize_maps(maps: torch.Tensor, how: str = "max") -> torch.Tensor:
    """Per-image scaling to [0, 1]; maps whose maximum (or range) is zero stay all zero."""
    if how not in NORMALIZE:
        raise NetscopeError(f"normalize must be one of {NORMALIZE}, got {how!r}.")
    if how == "none":
        return maps
    flat = maps.flatten(1)
    hi = flat.max(1).values.view(-1, 1, 1)
    lo = flat.min(1).values.view(-1, 1, 1) if how == "minmax" else torch.zeros_like(hi)
    span = hi - lo
    safe = torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, (maps - lo) / safe, torch.zeros_like(maps))


def _scores(output: Any, targets: Resolved) -> torch.Tensor:
    return targets.score(output).sum()


def layer_gradients(model: nn.Module, x: torch.Tensor, layer: str | LayerRef,
                    targets: Targets = None, reshape: Reshape | None = None):
    """Activations A, dScore/dA (both as (N, C, h, w) grids, token layers reshaped) and
    logits; the backward pass stops at the layer."""
    ref = LayerRef.parse(layer)
    with capture(model, [ref], cut=True) as rec:
        out = model(x)
        A = rec[ref]
        layout = layout_for(model, A, tuple(x.shape[-2:]), str(ref), reshape)
        t = resolve_targets(detached(out), targets)
        score = _scores(out, t)
        grad = torch.autograd.grad(score, A, allow_unused=True)[0] if score.requires_grad \
            else None
    if grad is None:  # the score does not depend on this layer
        grad = torch.zeros_like(A)
    return layout.to_grid(A.detach()), layout.to_grid(grad), detached(out), t


def _safe_divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den where den != 0, else 0 (no NaN from empty channels)."""
    ok = den != 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)),
                       torch.zeros_like(num))


def gradcam_weights(A: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Grad-CAM: alpha_k = spatial mean of dy/dA_k."""
    return grad.mean((2, 3), keepdim=True)


def gradcampp_weights(A: torch.Tensor, grad: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018) with the exponential-score closed form:
    a_kij = g^2 / (2 g^2 + sum_ab A_kab g^3 + eps), alpha_k = sum_ij a_kij ReLU(g_kij).
    ``eps`` = 0 is the paper's formula; pytorch-grad-cam (1.5.7) adds eps = 1e-6 to the
    denominator, which changes the map wherever g^2 is small against 1e-6."""
    g2, g3 = grad**2, grad**3
    a = _safe_divide(g2, 2 * g2 + A.sum((2, 3), keepdim=True) * g3 + eps)
    a = torch.where(grad != 0, a, torch.zeros_like(a))
    return (a * F.relu(grad)).sum((2, 3), keepdim=True)


PP_UNSTABLE = 0.05  # |2 + g * sum(A)| below this at a position that matters: unstable map


def gradcampp_instability(A: torch.Tensor, grad: torch.Tensor) -> float:
    """Share of the Grad-CAM++ weight that comes from positions where the denominator
    2 + g_kij * sum_ab A_kab nearly vanishes (below PP_UNSTABLE). On layers with many
    negative activations (linear bottlenecks) a few such positions dominate the map."""
    den = 2 + grad * A.sum((2, 3), keepdim=True)
    contrib = (_safe_divide(torch.ones_like(den), den) * F.relu(grad)).abs()
    unstable = (den.abs() < PP_UNSTABLE) & (grad > 0)
    total = contrib.sum()
    return float(contrib[unstable].sum() / total) if total > 0 else 0.0


def xgradcam_weights(A: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """XGrad-CAM (Fu et al. 2020): alpha_k = sum_ij A_kij g_kij / sum_ij A_kij, the
    activation-weighted mean of the gradient."""
    return _safe_divide((A * grad).sum((2, 3), keepdim=True), A.sum((2, 3), keepdim=True))


def layercam_weights(A: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """LayerCAM (Jiang et al. 2021): one weight per position, ReLU(g_kij), so fine detail in
    early layers survives instead of being averaged away."""
    return F.relu(grad)


def hirescam_weights(A: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """HiResCAM (Draelos and Carin 2020): the gradient itself at each position, so the map
    sums to the score's first-order contribution of each place (no spatial averaging)."""
    return grad


METHODS = {"gradcam": gradcam_weights, "gradcam++": gradcampp_weights,
           "xgradcam": xgradcam_weights, "layercam": layercam_weights,
           "hirescam": hirescam_weights}


def grad_cam(model: nn.Module, x: torch.Tensor, layer: str | LayerRef | None = None,
             targets: Targets = None, method: str = "gradcam",
             normalize: str = "max", eps: float = 0.0,
             reshape: Reshape | None = None) -> Heatmaps:
    """Grad-CAM maps for a batch, one target class per image; ``method`` picks the weights
    (``gradcam``, ``gradcam++``, ``xgradcam``, ``layercam``, ``hirescam``):
    map = ReLU(sum_k w_k A_k). ``eps`` is Grad-CAM++'s denominator term (0: the paper;
    1e-6 reproduces pytorch-grad-cam); the result warns when Grad-CAM++ is unstable.
    Token layers (vision transformers) are reshaped to grids (``token_grid``); ``reshape``
    overrides the guess."""
    if method not in METHODS:
        raise NetscopeError(f"method must be one of {', '.join(METHODS)}, got {method!r}.")
    if not (eps >= 0 and eps < float("inf")):
        raise NetscopeError(f"eps must be a finite number >= 0, got {eps}.")
    layer = layer or default_cam_layer(model, x)
    A, grad, logits, t = layer_gradients(model, x, layer, targets, reshape)
    weights = gradcampp_weights(A, grad, eps) if method == "gradcam++" else \
        METHODS[method](A, grad)
    maps = F.relu((weights * A).sum(1))
    heat = Heatmaps(normalize_maps(maps, normalize), logits, t, str(layer), method, normalize)
    if not bool(grad.abs().amax() > 0):
        heat.warnings.append(
            f"the target scores do not depend on layer {layer}'s grid positions (zero "
            f"gradient), so the maps are empty; in a class-token transformer the patch tokens "
            f"after the last attention never reach the head: use an earlier layer (the "
            f"default layer avoids this).")
    if method == "gradcam++" and eps == 0:
        share = gradcampp_instability(A, grad)
        if share > 0.1:
            negative = float((A < 0).double().mean())
            heat.warnings.append(
                f"Grad-CAM++ at {layer} is unstable: {share:.0%} of its weight comes from "
                f"positions where the denominator 2 + g*sum(A) nearly vanishes "
                f"({negative:.0%} of the activations are negative, as after a linear "
                f"bottleneck). Use a layer after an activation function (the default layer), "
                f"or eps=1e-6 to match pytorch-grad-cam.")
    return heat


def cam(model: nn.Module, x: torch.Tensor, layer: str | LayerRef | None = None,
        fc: str | None = None, targets: Targets = None, normalize: str = "max",
        reshape: Reshape | None = None) -> Heatmaps:
    """Class activation maps (Zhou et al. 2016) for a global-average-pool + linear head:
    ReLU(sum_k w_ck A_k) with w from the linear layer (the bias is a constant, left out)."""
    if as_target(targets).kind != "class":
        raise NetscopeError("CAM reads class weights from the linear head, so its target must "
                            "be a class; use Grad-CAM for other targets.")
    layer = LayerRef.parse(layer or default_cam_layer(model, x))
    head = find_layer(model, fc) if fc else _last_linear(model)
    with capture(model, [layer]) as rec, torch.no_grad():
        logits = model(x)
        A = as_grid(model, rec[layer], tuple(x.shape[-2:]), str(layer), reshape)
    if A.dim() != 4 or A.shape[1] != head.in_features:
        raise NetscopeError(
            f"CAM needs layer {layer} to give (batch, {head.in_features}, h, w) feeding the "
            f"linear head through global average pooling; it gives {tuple(A.shape)}. "
            f"Use Grad-CAM for other architectures."
        )
    t = resolve_targets(logits, targets)
    w = head.weight.detach()[t.labels]  # (N, K)
    maps = F.relu((w[:, :, None, None] * A).sum(1))
    return Heatmaps(normalize_maps(maps, normalize), logits, t, str(layer), "cam", normalize)


def eigen_cam(model: nn.Module, x: torch.Tensor, layer: str | LayerRef | None = None,
              normalize: str = "max", centre: bool = False,
              reshape: Reshape | None = None) -> Heatmaps:
    """Eigen-CAM (Muhammad and Yeasin 2020): each image's activations (h*w positions x K
    channels) projected on their first singular vector; class-agnostic and gradient-free.

    ``centre=False`` (default, as the paper's description) decomposes the activations as
    they are, so the map follows where the dominant pattern is strong; ``centre=True``
    subtracts each channel's mean over positions first (as pytorch-grad-cam does), so the
    map shows where the pattern deviates most from the image's average, which on a photo
    filled by its object can point at the background instead. The singular vector's sign is
    arbitrary; it is chosen so the map correlates positively with the activation strength
    (the L2 norm over channels at each position): the map points at what the layer
    responds to. ``targets`` in the result are the top-1 classes, for labels only."""
    layer = LayerRef.parse(layer or default_cam_layer(model, x))
    with capture(model, [layer]) as rec, torch.no_grad():
        logits = model(x)
        A = as_grid(model, rec[layer], tuple(x.shape[-2:]), str(layer), reshape)
    n, _, h, w = A.shape
    m = A.flatten(2).transpose(1, 2).double()  # (N, h*w, K)
    strength = m.norm(dim=2)  # (N, h*w)
    if centre:
        m = m - m.mean(1, keepdim=True)
    proj = _first_singular_projection(m)
    agree = ((proj - proj.mean(1, keepdim=True))
             * (strength - strength.mean(1, keepdim=True))).sum(1)
    sign = torch.where(agree < 0, -1.0, 1.0).to(proj.dtype)
    maps = F.relu(proj * sign[:, None]).to(A.dtype).view(n, h, w)
    return Heatmaps(normalize_maps(maps, normalize), logits, top_classes(logits), str(layer),
                    "eigencam", normalize)


def top_classes(output: Any) -> torch.Tensor:
    """Each image's top-1 class for labels, -1 when the output is not class scores."""
    if isinstance(output, torch.Tensor) and output.dim() == 2:
        return output.argmax(1)
    return torch.full((batch_size(output),), -1, dtype=torch.long)  # labels: on the CPU


def _first_singular_projection(m: torch.Tensor) -> torch.Tensor:
    """m @ v1 for each (rows x cols) matrix, v1 its first right singular vector, from the
    eigenvectors of the smaller Gram matrix: ten times faster than an SVD of 7x7x1280
    activations, and never a (h*w)^2 matrix for large early-layer maps."""
    if m.shape[1] <= m.shape[2]:  # m m^T u = s^2 u and m v = s u
        vals, vecs = torch.linalg.eigh(m @ m.transpose(1, 2))
        return vecs[..., -1] * vals[:, -1:].clamp(min=0).sqrt()
    vecs = torch.linalg.eigh(m.transpose(1, 2) @ m)[1]
    return (m @ vecs[..., -1:])[..., 0]


def saliency(model: nn.Module, x: torch.Tensor, targets: Targets = None, samples: int = 0,
             noise: float = 0.05, seed: int = 0) -> Heatmaps:
    """|d score / d pixel|, max over colour channels (Simonyan et al. 2013).

    ``samples`` > 0 is SmoothGrad (Smilkov et al. 2017): the mean of |gradient| over noisy
    copies (noise SD = ``noise`` x the input's range), the absolute value taken per copy as
    Captum does. Averaging signed gradients instead cancels the signal with the noise: on
    EfficientNet-Lite0 that gave maps worse than the plain gradient, as did 15% noise."""
    if samples > 0 and not 0 < noise < 10:
        raise NetscopeError(f"SmoothGrad noise must be a positive fraction of the input's "
                            f"range (e.g. 0.05), got {noise}.")
    with capture(model, []):
        if samples <= 0:  # one pass gives the logits, the targets and the gradient
            xi = x.detach().clone().requires_grad_(True)
            out = model(xi)
            logits = detached(out)
            t = resolve_targets(logits, targets)
            (grad,) = torch.autograd.grad(_scores(out, t), xi)
        else:
            with torch.no_grad():
                logits = model(x)
            t = resolve_targets(logits, targets)
            gen = torch.Generator().manual_seed(seed)
            # per image: an image's map must not depend on the other images in its batch
            sd = noise * (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, 1, 1, 1)
            grad = torch.zeros_like(x)
            for _ in range(samples):  # one noise pattern per sample, scaled per image
                eps = torch.randn((1, *x.shape[1:]), generator=gen, dtype=x.dtype)
                grad += input_grad(model, x + eps.to(x.device) * sd, t).abs()
            grad /= samples
    maps = grad.abs().amax(1)
    return Heatmaps(normalize_maps(maps, "max"), logits, t, "input", "saliency")


def input_grad(model: nn.Module, x: torch.Tensor, t: Resolved) -> torch.Tensor:
    """d (sum of each image's target score) / d input (zero where a score does not
    depend on the input, e.g. a box target that no detection matches)."""
    xi = x.detach().clone().requires_grad_(True)
    score = _scores(model(xi), t)
    if not score.requires_grad:
        return torch.zeros_like(xi)
    (grad,) = torch.autograd.grad(score, xi, allow_unused=True)
    return torch.zeros_like(xi) if grad is None else grad


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise NetscopeError("CAM needs a linear classification head; none found. Use Grad-CAM.")
    return linears[-1]


def default_cam_layer(model: nn.Module, x: torch.Tensor | None = None) -> LayerRef:
    """The layer heatmaps use by default: the feature map a CNN's head pools, or for a
    transformer the last block output whose grid the score depends on (``layer_choice``)."""
    from netscope.vision.layer_choice import default_layer

    return default_layer(model, x)


def predict(model: nn.Module, x: torch.Tensor, k: int = 5,
            names: Sequence[str] | None = None) -> list[list[tuple[int, str, float]]]:
    """Top-k (index, name, probability) per image."""
    with capture(model, []), torch.no_grad():
        probs = model(x).softmax(1)
    top = probs.topk(min(k, probs.shape[1]), dim=1)
    return [[(int(i), class_label(names, int(i)), float(p))
             for p, i in zip(ps, idx, strict=True)]
            for ps, idx in zip(top.values, top.indices, strict=True)]
