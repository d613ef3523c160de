"""The Grad-CAM family: one pipeline, each variant supplies its channel weights.

Record the layer's activations A (N, K, h, w) and the gradient of each image's target score
with respect to them, let the variant supply weights alpha per channel (N, K, 1, 1) or per
channel and position (N, K, h, w), then map = ReLU(sum_k alpha_k A_k). Grad-CAM's weights
are the spatial mean of the gradient; Grad-CAM++ weights positive gradients by its alpha
coefficients; XGrad-CAM takes the activation-weighted mean of the gradient; LayerCAM weighs
each position by its positive gradient, HiResCAM by the gradient itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.batched import check_positive
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps
from netscope.vision.core.layer_choice import INPUT_IGNORED, default_layer, scores_ignore_input
from netscope.vision.core.targets import Resolved, TargetLike, detached, resolve
from netscope.vision.core.token_grid import Reshape, layout_for
from netscope.vision.methods.eigen import first_singular_projection, oriented
from netscope.vision.methods.noise_tunnel import noise_draws


def layer_gradients(model: nn.Module, x: torch.Tensor, layer: str | LayerRef,
                    targets: TargetLike = None, reshape: Reshape | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, object, Resolved]:
    """Activations A, dScore/dA (both as (N, C, h, w) grids, token layers reshaped), the
    model's output and the resolved targets; the backward pass stops at the layer."""
    ref = LayerRef.parse(layer)
    with capture(model, [ref], cut=True) as rec:
        out = model(x)
        A = rec[ref]
        layout = layout_for(model, A, tuple(x.shape[-2:]), str(ref), reshape)
        t = resolve(detached(out), targets)
        score = t.score(out).sum()
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
    return pp_weights(A, grad, grad**2, grad**3, eps)


def pp_weights(A: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor,
               eps: float = 0.0) -> torch.Tensor:
    """Grad-CAM++'s weights from the first, second and third derivatives (their means over
    noisy copies in Smooth Grad-CAM++)."""
    a = _safe_divide(g2, 2 * g2 + A.sum((2, 3), keepdim=True) * g3 + eps)
    a = torch.where(g2 != 0, a, torch.zeros_like(a))
    return (a * F.relu(g1)).sum((2, 3), keepdim=True)


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


def elementwise_map(A: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Element-wise Grad-CAM (pytorch-grad-cam's ``GradCAMElementWise``): sum_k ReLU(g_kij
    A_kij), each channel's positive contribution at each position, so channels that push
    the score down at a place cannot cancel those that push it up."""
    return F.relu(grad * A).sum(1)


def eigengrad_map(A: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Eigen-Grad-CAM (pytorch-grad-cam): the gradient x activation products (positions x
    channels), centred over positions, projected on their first principal direction. The
    direction's sign, which pytorch-grad-cam leaves to the SVD, is chosen so the map
    correlates positively with sum_k g_k A_k (the score's first-order share of each place)."""
    n, _, h, w = A.shape
    m = (grad * A).flatten(2).transpose(1, 2).double()  # (N, h*w, K)
    plain = m.sum(2)
    m = m - m.mean(1, keepdim=True)
    return oriented(first_singular_projection(m), plain).to(A.dtype).view(n, h, w)


VARIANTS = {"gradcam": gradcam_weights, "gradcam++": gradcampp_weights,
            "xgradcam": xgradcam_weights, "layercam": layercam_weights,
            "hirescam": hirescam_weights, "gradcam-elementwise": elementwise_map,
            "eigengradcam": eigengrad_map}
MAPS = ("gradcam-elementwise", "eigengradcam")  # variants that make the map themselves


@checked_images
def grad_cam(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
             layer: str | LayerRef | None = None, variant: str = "gradcam",
             normalize: str = "max", eps: float = 0.0,
             reshape: Reshape | None = None) -> Heatmaps:
    """Maps of the Grad-CAM family for a batch, one target per image; ``variant`` picks the
    weights (``gradcam``, ``gradcam++``, ``xgradcam``, ``layercam``, ``hirescam``):
    map = ReLU(sum_k w_k A_k). ``eps`` is Grad-CAM++'s denominator term (0: the paper;
    1e-6 reproduces pytorch-grad-cam); the result warns when Grad-CAM++ is unstable.
    Token layers (vision transformers) are reshaped to grids (``token_grid``); ``reshape``
    overrides the guess."""
    if variant not in VARIANTS:
        raise NetscopeError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}.")
    if not (eps >= 0 and eps < float("inf")):
        raise NetscopeError(f"eps must be a finite number >= 0, got {eps}.")
    layer = layer or default_layer(model, x)
    A, grad, logits, t = layer_gradients(model, x, layer, targets, reshape)
    heat = Heatmaps(normalize_maps(variant_maps(A, grad, variant, eps), normalize), logits, t,
                    t.labels, str(layer), variant, normalize)
    if not bool(grad.abs().amax() > 0) and scores_ignore_input(model, x):
        raise NetscopeError(INPUT_IGNORED)
    heat.warnings += cam_warnings(A, grad, layer, variant, eps)
    return heat


def variant_maps(A: torch.Tensor, grad: torch.Tensor, variant: str,
                 eps: float = 0.0) -> torch.Tensor:
    """ReLU(sum_k alpha_k A_k) with the variant's weights (or its own map)."""
    if variant in MAPS:
        return F.relu(VARIANTS[variant](A, grad))
    weights = gradcampp_weights(A, grad, eps) if variant == "gradcam++" else \
        VARIANTS[variant](A, grad)
    return F.relu((weights * A).sum(1))


@checked_images
def smooth_gradcampp(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
                     layer: str | LayerRef | None = None, samples: int = 4,
                     noise: float = 0.05, seed: int = 0, eps: float = 0.0,
                     normalize: str = "max") -> Heatmaps:
    """Smooth Grad-CAM++ (Omeiza et al. 2019): Grad-CAM++ on the clean image's activations
    with the gradient, its square and its cube each averaged over ``samples`` noisy copies
    of the image (noise SD ``noise`` x each image's range, as SmoothGrad), so the weights
    do not hang on one image's gradient. As the paper; TorchCAM 0.5 weights the last
    sample's gradient instead of the mean and sums A g^3 over positions."""
    if not 0 < noise < 10:
        raise NetscopeError(f"Smooth Grad-CAM++: noise must be a positive fraction of the "
                            f"input's range below 10 (e.g. 0.05), got {noise!r}.")
    layer = layer or default_layer(model, x)
    A, _, logits, t = layer_gradients(model, x, layer, targets)
    g1 = g2 = g3 = torch.zeros_like(A)
    for e in noise_draws(x, check_positive("samples", samples), noise, seed):
        _, g, _, _ = layer_gradients(model, x + e, layer, t)
        g1, g2, g3 = g1 + g, g2 + g**2, g3 + g**3
    g1, g2, g3 = g1 / samples, g2 / samples, g3 / samples
    maps = F.relu((pp_weights(A, g1, g2, g3, eps) * A).sum(1))
    return Heatmaps(normalize_maps(maps, normalize), logits, t, t.labels, str(layer),
                    "smoothgradcam++", normalize)


def cam_warnings(A: torch.Tensor, grad: torch.Tensor, layer, variant: str,
              eps: float) -> list[str]:
    """What the user must know about these maps: an empty gradient, an unstable Grad-CAM++."""
    found = []
    if not bool(grad.abs().amax() > 0):
        found.append(
            f"the target scores do not depend on layer {layer}'s grid positions (zero "
            f"gradient), so the maps are empty; in a class-token transformer the patch tokens "
            f"after the last attention never reach the head: use an earlier layer (the "
            f"default layer avoids this).")
    if variant == "gradcam++" and eps == 0:
        share = gradcampp_instability(A, grad)
        if share > 0.1:
            negative = float((A < 0).double().mean())
            found.append(
                f"Grad-CAM++ at {layer} is unstable: {share:.0%} of its weight comes from "
                f"positions where the denominator 2 + g*sum(A) nearly vanishes "
                f"({negative:.0%} of the activations are negative, as after a linear "
                f"bottleneck). Use a layer after an activation function (the default layer), "
                f"or eps=1e-6 to match pytorch-grad-cam.")
    return found
