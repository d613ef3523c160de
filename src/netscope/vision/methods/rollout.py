"""Attention rollout (Abnar & Zuidema 2020): how much each input patch flows into the class
token through all attention layers of a vision transformer.

Per layer, the heads' attention matrices are fused (mean, max or min), optionally the
weakest ``discard`` share of each row's weights is dropped (as jacobgil's vit-explain does;
the class token's own column is always kept), the residual connection is added as
0.5 A + 0.5 I and rows are renormalized; the layers are multiplied from first to last. The
map is the class token's row over the patch tokens (for a model without prefix tokens, the
mean over all rows), reshaped to the patch grid. Class-agnostic; the result's targets are
the top-1 classes, for labels only.

Attention weights are read without changing the model: nn.MultiheadAttention is asked for
its per-head weights during the pass (and returns what its caller asked for), and calls of
F.scaled_dot_product_attention (timm, most custom ViTs, Hugging Face's "sdpa") are
computed explicitly while the pass runs, with the same result, and the softmax of a
written-out attention (Hugging Face's "eager") is recorded, through a torch function mode:
on this thread and for this pass only, never by patching torch for the whole process.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from netscope.errors import NetscopeError
from netscope.vision.core.capture import capture, hooks
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps, top_classes
from netscope.vision.core.targets import TargetLike
from netscope.vision.core.token_grid import infer_layout, patch_size

FUSIONS = ("mean", "max", "min")


def _explicit_sdpa(record: list[torch.Tensor], graph: bool = False):
    """scaled_dot_product_attention computed as softmax(q k^T * scale + mask) v, recording
    the attention weights (dropout is off: explanations run in eval mode)."""

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
             enable_gqa=False):
        scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
        if enable_gqa and key.shape[-3] != query.shape[-3]:
            rep = query.shape[-3] // key.shape[-3]
            key, value = key.repeat_interleave(rep, -3), value.repeat_interleave(rep, -3)
        logits = query @ key.transpose(-2, -1) * scale
        t, s = logits.shape[-2:]
        if is_causal:
            keep = torch.ones(t, s, dtype=torch.bool, device=logits.device).tril()
            logits = logits.masked_fill(~keep, float("-inf"))
        if attn_mask is not None:
            logits = logits.masked_fill(~attn_mask, float("-inf")) \
                if attn_mask.dtype == torch.bool else logits + attn_mask
        weights = logits.softmax(-1)
        record.append(weights if graph else weights.detach())
        return weights @ value

    return sdpa


@contextmanager
def attention_recorded(model: nn.Module, graph: bool = False) -> Iterator[list[torch.Tensor]]:
    """Every attention matrix (batch, heads, tokens, tokens) computed inside the block, in
    order (``graph``: still in the autograd graph, for gradients with respect to them); the
    model and torch are left as they were."""
    record: list[torch.Tensor] = []
    wanted: dict[int, tuple[bool, bool]] = {}  # what each MHA's caller asked for
    mha = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    with hooks(((m, _ask_weights(wanted)) for m in mha), pre=True, with_kwargs=True), \
            hooks(((m, _keep_weights(record, wanted, graph)) for m in mha), with_kwargs=True), \
            _ExplicitAttention(_explicit_sdpa(record, graph), record, graph):
        yield record


_SOFTMAX = (F.softmax, torch.softmax, torch.Tensor.softmax)


class _ExplicitAttention(TorchFunctionMode):
    """While active on this thread only, F.scaled_dot_product_attention calls run the
    explicit version (which records the weights), and a written-out attention's softmax
    over (batch, heads, tokens, tokens) scores (Hugging Face's eager attention, hand-written
    ViTs) is recorded as it is computed; nothing global is patched, so another thread (live
    mode's server) or another model is never affected."""

    def __init__(self, sdpa, record: list[torch.Tensor], graph: bool = False) -> None:
        super().__init__()
        self.sdpa, self.record, self.graph = sdpa, record, graph

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            return self.sdpa(*args, **kwargs)
        out = func(*args, **kwargs)
        if func in _SOFTMAX and _is_attention(out, args, kwargs):
            self.record.append(out if self.graph else out.detach())
        return out


def _is_attention(out, args, kwargs) -> bool:
    """A softmax over the last axis of square (batch, heads, tokens, tokens) scores."""
    dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
    return isinstance(out, torch.Tensor) and out.dim() == 4 and dim in (-1, 3) \
        and out.shape[-1] == out.shape[-2]


def _ask_weights(wanted: dict[int, tuple[bool, bool]]):
    def hook(module, args, kwargs):
        if len(args) > 4:
            raise NetscopeError("attention rollout: pass need_weights to "
                                "nn.MultiheadAttention by keyword.")
        wanted[id(module)] = (kwargs.get("need_weights", True),
                              kwargs.get("average_attn_weights", True))
        return args, {**kwargs, "need_weights": True, "average_attn_weights": False}
    return hook


def _keep_weights(record: list[torch.Tensor], wanted: dict[int, tuple[bool, bool]],
                  graph: bool = False):
    def hook(module, args, kwargs, output):
        out, weights = output
        record.append(weights if graph else weights.detach())
        if graph:  # the output made from the recorded weights, so gradients reach them
            out = _attended(module, weights, args[2] if len(args) > 2 else kwargs["value"])
        need, average = wanted.pop(id(module))
        return out, (weights.mean(1) if average else weights) if need else None
    return hook


def _attended(mha: nn.MultiheadAttention, weights: torch.Tensor,
              value: torch.Tensor) -> torch.Tensor:
    """nn.MultiheadAttention's output computed from its per-head ``weights`` (batch, heads,
    queries, keys) and its ``value`` input: out_proj(weights @ value projection)."""
    e, h = mha.embed_dim, mha.num_heads
    v = value if mha.batch_first else value.transpose(0, 1)
    w_v = mha.in_proj_weight[2 * e:] if mha.in_proj_weight is not None else mha.v_proj_weight
    b_v = None if mha.in_proj_bias is None else mha.in_proj_bias[2 * e:]
    n, s = v.shape[:2]
    v = F.linear(v, w_v, b_v).view(n, s, h, e // h).transpose(1, 2)
    out = mha.out_proj((weights @ v).transpose(1, 2).reshape(n, weights.shape[-2], e))
    return out if mha.batch_first else out.transpose(0, 1)


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
