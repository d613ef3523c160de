"""Attention rollout (Abnar & Zuidema 2020): how much each input patch flows into the class
token through all attention layers of a vision transformer.

Per layer, the heads' attention matrices are fused (mean, max or min), optionally the
weakest ``discard`` share of each row's weights is dropped (as jacobgil's vit-explain does;
the class token's own column is always kept), the residual connection is added as
0.5 A + 0.5 I and rows are renormalized; the layers are multiplied from first to last. The
map is the class token's row over the patch tokens (for a model without prefix tokens, the
mean over all rows), reshaped to the patch grid. Class-agnostic; the result's targets are
the top-1 classes, for labels only.

Attention weights are read without changing the model (``core.attention_record``).
"""

from __future__ import annotations

import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.attention_record import attention_recorded
from netscope.vision.core.capture import capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps, top_classes
from netscope.vision.core.targets import TargetLike
from netscope.vision.core.token_grid import infer_layout, patch_size

FUSIONS = ("mean", "max", "min")


@checked_images
def attention_rollout(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
                      fusion: str = "mean", discard: float = 0.0,
                      normalize: str = "max") -> Heatmaps:
    """Rollout maps (N, h, w) at the patch grid; see the module docstring. ``targets`` is
    accepted for the common signature and ignored: rollout is class-agnostic."""
    if fusion not in FUSIONS:
        raise NetscopeError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}.")
    if not 0 <= discard < 1:
        raise NetscopeError(f"discard must be a share in [0, 1), got {discard}.")
    with capture(model, []), torch.no_grad(), attention_recorded(model) as record:
        logits = model(x)
    if not record:
        raise NetscopeError(
            "attention rollout needs a transformer's attention weights, and none were computed "
            "in the forward pass (no nn.MultiheadAttention, no F.scaled_dot_product_attention "
            "call, no softmax over (batch, heads, tokens, tokens) scores). Use Grad-CAM, "
            "which works on any layer.")
    tokens = record[0].shape[-1]
    odd = [tuple(a.shape) for a in record if a.shape[-2:] != (tokens, tokens)
           or a.shape[0] != x.shape[0]]
    if odd:
        raise NetscopeError(
            f"attention rollout needs global attention over one sequence per image; this model "
            f"computes attention of shapes {sorted(set(odd))[:3]} (windowed attention, as in "
            f"Swin, or a changing token count). Use Grad-CAM instead.")
    roll = rollout_matrix(record, fusion, discard)
    layout = infer_layout((x.shape[0], tokens, 1), tuple(x.shape[-2:]), patch_size(model),
                          "the attention's token sequence")
    rows = roll[:, 0] if layout.prefix else roll.mean(1)
    h, w = layout.grid
    maps = rows[:, layout.prefix:].reshape(-1, h, w).to(x.dtype)
    return Heatmaps(normalize_maps(maps, normalize), logits, None, top_classes(logits),
                    f"attention ({len(record)} layers)", "rollout", normalize)


def rollout_matrix(attentions: list[torch.Tensor], fusion: str = "mean",
                   discard: float = 0.0) -> torch.Tensor:
    """The product of the layers' fused, residual-corrected attention (N, T, T)."""
    n, _, t, _ = attentions[0].shape
    eye = torch.eye(t, dtype=torch.float64, device=attentions[0].device)
    roll = eye.expand(n, t, t)
    for a in attentions:
        fused = {"mean": lambda z: z.mean(1), "max": lambda z: z.amax(1),
                 "min": lambda z: z.amin(1)}[fusion](a.double())
        if discard > 0:
            fused = _discard_weakest(fused, discard)
        step = 0.5 * fused + 0.5 * eye
        step = step / step.sum(-1, keepdim=True)
        roll = step @ roll
    return roll


def _discard_weakest(a: torch.Tensor, share: float) -> torch.Tensor:
    """Zero the weakest ``share`` of each row's weights, never the first (class) column."""
    k = int(a.shape[-1] * share)
    if k == 0:
        return a
    low = a[..., 1:].topk(k, dim=-1, largest=False).indices + 1
    return a.scatter(-1, low, 0.0)
