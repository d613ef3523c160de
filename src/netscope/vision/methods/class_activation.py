"""Class activation maps (Zhou et al. 2016) for a global-average-pool + linear head:
ReLU(sum_k w_ck A_k) with w read from the linear layer (the bias is a constant, left out).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps
from netscope.vision.core.layer_choice import default_layer
from netscope.vision.core.layers import find_layer
from netscope.vision.core.targets import TargetLike, as_target, resolve
from netscope.vision.core.token_grid import Reshape, as_grid


@checked_images
def cam(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
        layer: str | LayerRef | None = None, fc: str | None = None, normalize: str = "max",
        reshape: Reshape | None = None) -> Heatmaps:
    """CAM maps, one class per image; ``fc`` names the linear head (default: the last
    nn.Linear)."""
    if as_target(targets).kind != "class":
        raise NetscopeError("CAM reads class weights from the linear head, so its target must "
                            "be a class; use Grad-CAM for other targets.")
    layer = LayerRef.parse(layer or default_layer(model, x))
    head = find_layer(model, fc) if fc else last_linear(model)
    with capture(model, [layer]) as rec, torch.no_grad():
        logits = model(x)
        A = as_grid(model, rec[layer], tuple(x.shape[-2:]), str(layer), reshape)
    if A.dim() != 4 or A.shape[1] != head.in_features:
        raise NetscopeError(
            f"CAM needs layer {layer} to give (batch, {head.in_features}, h, w) feeding the "
            f"linear head through global average pooling; it gives {tuple(A.shape)}. "
            f"Use Grad-CAM for other architectures."
        )
    t = resolve(logits, targets)
    w = head.weight.detach()[t.labels]  # (N, K)
    maps = F.relu((w[:, :, None, None] * A).sum(1))
    return Heatmaps(normalize_maps(maps, normalize), logits, t, t.labels, str(layer), "cam",
                    normalize)


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's last nn.Linear: the classification head CAM reads its weights from."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise NetscopeError("CAM needs a linear classification head; none found. Use Grad-CAM.")
    return linears[-1]
