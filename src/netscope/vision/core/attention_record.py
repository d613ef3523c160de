"""Attention weights read during a forward pass without changing the model (attention
rollout, LeGrad): nn.MultiheadAttention is asked for its per-head weights (and returns what
its caller asked for); calls of F.scaled_dot_product_attention (timm, most custom ViTs,
Hugging Face's "sdpa") are computed explicitly, with the same result; and the softmax of a
written-out attention (Hugging Face's "eager") is recorded, through a torch function mode:
on this thread and for this pass only, never by patching torch for the whole process.
``within`` limits all of it to some blocks: the others keep their fused attention.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from netscope.errors import NetscopeError
from netscope.vision.core.capture import hooks


class _Scope:
    """Is the pass inside one of the chosen blocks now? (Always, when none are chosen.)"""

    def __init__(self, within: Sequence[nn.Module] | None) -> None:
        self.within, self.depth = within, 0

    @property
    def active(self) -> bool:
        return self.within is None or self.depth > 0

    def enter(self, *_args) -> None:
        self.depth += 1

    def leave(self, *_args) -> None:
        self.depth -= 1

    def hooked(self):
        blocks = self.within or []
        return hooks(((b, self.enter) for b in blocks), pre=True), \
            hooks((b, self.leave) for b in blocks)

    def modules(self, model: nn.Module) -> Iterator[nn.Module]:
        if self.within is None:
            yield from model.modules()
        else:
            for block in self.within:
                yield from block.modules()


@contextmanager
def attention_recorded(model: nn.Module, graph: bool = False,
                       within: Sequence[nn.Module] | None = None
                       ) -> Iterator[list[torch.Tensor]]:
    """Every attention matrix (batch, heads, tokens, tokens) computed inside the block (in
    ``within`` blocks only, when given), in order (``graph``: still in the autograd graph,
    for gradients with respect to them); the model and torch are left as they were."""
    record: list[torch.Tensor] = []
    wanted: dict[int, tuple[bool, bool]] = {}  # what each MHA's caller asked for
    scope = _Scope(within)
    mha = [m for m in scope.modules(model) if isinstance(m, nn.MultiheadAttention)]
    entering, leaving = scope.hooked()
    with entering, leaving, \
            hooks(((m, _ask_weights(wanted)) for m in mha), pre=True, with_kwargs=True), \
            hooks(((m, _keep_weights(record, wanted, graph)) for m in mha), with_kwargs=True), \
            _ExplicitAttention(_explicit_sdpa(record, graph), record, scope, graph):
        yield record


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


_SOFTMAX = (F.softmax, torch.softmax, torch.Tensor.softmax)


class _ExplicitAttention(TorchFunctionMode):
    """While active on this thread only, F.scaled_dot_product_attention calls run the
    explicit version (which records the weights), and a written-out attention's softmax
    over (batch, heads, tokens, tokens) scores (Hugging Face's eager attention, hand-written
    ViTs) is recorded as it is computed; nothing global is patched, so another thread (live
    mode's server) or another model is never affected."""

    def __init__(self, sdpa, record: list[torch.Tensor], scope: _Scope,
                 graph: bool = False) -> None:
        super().__init__()
        self.sdpa, self.record, self.scope, self.graph = sdpa, record, scope, graph

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not self.scope.active:
            return func(*args, **kwargs)
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
    v = value.transpose(0, 1) if mha.batch_first else value  # (keys, batch, dim), as MHA
    w_v = mha.in_proj_weight[2 * e:] if mha.in_proj_weight is not None else mha.v_proj_weight
    b_v = None if mha.in_proj_bias is None else mha.in_proj_bias[2 * e:]
    s, n = v.shape[:2]
    v = F.linear(v, w_v, b_v).view(s, n, h, e // h).permute(1, 2, 0, 3)
    q = weights.shape[-2]
    out = mha.out_proj((weights @ v).permute(2, 0, 1, 3).reshape(q, n, e))
    return out.transpose(0, 1) if mha.batch_first else out
