"""Relevance through attention and layer norm.

``ah`` (Ali et al. 2022, conservative propagation): the attention weights and the layer
norm's standard deviation are held constant, so both are linear maps of the values and the
input, and relevance goes to the values only.

``attnlrp`` (Achtibat et al. 2024) where it differs: the weighted sum A v is a bilinear
product, so the uniform rule gives each factor half (epsilon rule on each, the other held
fixed); the softmax passes its half on by its Taylor expansion at the logits with the bias
absorbed, R_L = L (R_A - A sum R_A); the logits q k^T * scale are bilinear again, half to
the queries and half to the keys. Relevance then reaches the input through the query and
key projections too. (Layer norm and the elementwise activations are as in ``ah``: the
identity on the normalization, the epsilon rule on the affine part.)"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.methods.relevance.rules import Layer, Rule, share
from netscope.vision.methods.relevance.units import Unit, dense_transpose


class Product(nn.Module):
    """a @ b of two tensors that carry relevance. ``uniform`` False: a is attention weights
    held constant (the AH rule), so all relevance goes to b; True: AttnLRP's uniform rule,
    half to each factor by the epsilon rule with the other held fixed."""

    def __init__(self, name: str, stabilizer: float, uniform: bool = False) -> None:
        super().__init__()
        self.name, self.stabilizer, self.uniform = name, stabilizer, uniform

    def forward(self, a, b):
        return _ProductStep.apply(a, b, self.stabilizer, self.uniform)


class _ProductStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, stabilizer: float, uniform: bool):
        y = a @ b
        ctx.save_for_backward(a, b, y)
        ctx.stabilizer, ctx.uniform = stabilizer, uniform
        return y

    @staticmethod
    def backward(ctx, R):
        a, b, y = ctx.saved_tensors
        s = share(R, y, ctx.stabilizer)
        Rb = b * (a.transpose(-2, -1) @ s)
        if not ctx.uniform:
            return torch.zeros_like(a), Rb, None, None
        return 0.5 * a * (s @ b.transpose(-2, -1)), 0.5 * Rb, None, None


class MHA(nn.Module):
    """nn.MultiheadAttention (self-attention) as LRP units: the value projection and the
    output projection by their dense rules, the attention by the AH rule; query and key
    receive no relevance. Returns (output, None) as the module does without weights."""

    def __init__(self, mha: nn.MultiheadAttention, rule_in: Rule, rule_out: Rule,
                 stabilizer: float, attention: str = "ah") -> None:
        super().__init__()
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise NetscopeError("LRP through nn.MultiheadAttention needs one packed in_proj "
                                "(query, key and value of the same size) and no bias_k.")
        self.mha = mha
        c = mha.embed_dim
        w, b = mha.in_proj_weight, mha.in_proj_bias
        self.q = Unit(Layer("q", F.linear, w[:c], None if b is None else b[:c]), rule_in)
        self.k = Unit(Layer("k", F.linear, w[c:2 * c], None if b is None else b[c:2 * c]),
                       rule_in)
        self.v = Unit(Layer("v", F.linear, w[2 * c:], None if b is None else b[2 * c:]),
                       rule_in)
        self.out = Unit(Layer("out", F.linear, mha.out_proj.weight, mha.out_proj.bias,
                               dense_transpose), rule_out)
        self.attend = Attention("attention", stabilizer, (None, False), attention)

    def forward(self, query, key=None, value=None, *args, **kwargs):
        x = query if self.mha.batch_first else query.transpose(0, 1)  # (N, T, C)
        n, t, c = x.shape
        h = self.mha.num_heads

        def heads(z):
            return z.view(n, t, h, c // h).transpose(1, 2)
        y = self.attend(heads(self.q(x)), heads(self.k(x)), heads(self.v(x)))
        out = self.out(y.transpose(1, 2).reshape(n, t, c))
        return (out if self.mha.batch_first else out.transpose(0, 1)), None


def layer_norm(mod: nn.LayerNorm) -> Callable:
    """LayerNorm with its standard deviation taken as a constant (Ali et al. 2022): a linear
    map of x, so the epsilon rule hands relevance through it conservatively."""
    return layer_norm_over(tuple(mod.normalized_shape), mod.eps)


def layer_norm_over(shape: tuple[int, ...], eps: float) -> Callable:
    """The same for F.layer_norm over the last ``len(shape)`` axes."""
    dims = tuple(range(-len(shape), 0))

    def fn(x, w, b):
        sd = (x.detach().var(dims, unbiased=False, keepdim=True) + eps).sqrt()
        y = (x - x.mean(dims, keepdim=True)) / sd
        return y if w is None else y * w + (0 if b is None else b)
    return fn


class Attention(nn.Module):
    """softmax(q k^T * scale) v, the attention weights taken as constants in the backward
    pass (the AH rule of Ali et al. 2022, as AttnLRP keeps it for the value path): all
    relevance goes to the values, in proportion to each one's weighted contribution."""

    def __init__(self, name: str, stabilizer: float, options, attention: str = "ah") -> None:
        super().__init__()
        self.name, self.stabilizer, self.attention = name, stabilizer, attention
        self.scale, self.causal = options

    def forward(self, q, k, v, mask=None):
        return _AttentionStep.apply(q, k, v, self, mask)


class _AttentionStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, unit: Attention, mask=None):
        scale = unit.scale if unit.scale is not None else q.shape[-1] ** -0.5
        logits = q @ k.transpose(-2, -1) * scale
        if unit.causal:
            t, s = logits.shape[-2:]
            keep = torch.ones(t, s, dtype=torch.bool, device=q.device).tril()
            logits = logits.masked_fill(~keep, float("-inf"))
        if mask is not None:  # a constant mask (Hugging Face passes an all-True one)
            logits = logits.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool \
                else logits + mask
        weights = logits.softmax(-1)
        y = weights @ v
        ctx.save_for_backward(q, k, v, logits, weights, y)
        ctx.stabilizer, ctx.attention, ctx.scale = unit.stabilizer, unit.attention, scale
        return y

    @staticmethod
    def backward(ctx, R):
        q, k, v, logits, weights, y = ctx.saved_tensors
        s = share(R, y, ctx.stabilizer)
        Rv = v * (weights.transpose(-2, -1) @ s)
        if ctx.attention == "ah":
            return torch.zeros_like(q), torch.zeros_like(k), Rv, None, None
        return (*attnlrp_logits(q, k, logits, weights, s, v, ctx.scale, ctx.stabilizer),
                0.5 * Rv, None, None)


def attnlrp_logits(q, k, logits, weights, s, v, scale: float, stabilizer: float):
    """AttnLRP's relevance of the queries and keys (see the module docstring), from the
    share ``s`` = R / y of the weighted sum's output."""
    RA = 0.5 * weights * (s @ v.transpose(-2, -1))  # the uniform rule's half for A
    finite = torch.isfinite(logits)  # masked positions: A = 0 there, nothing to pass on
    L = torch.where(finite, logits, torch.zeros_like(logits))
    RL = L * (RA - weights * RA.sum(-1, keepdim=True))  # the softmax's Taylor rule
    # (the same rule as SoftmaxTaylor, for written-out attention)
    # the scale passes relevance unchanged; the uniform rule acts on the product q k^T
    # itself (stabilized there), exactly as for attention written out step by step
    sM = share(RL, L / scale, stabilizer)
    return 0.5 * q * (sM @ k), 0.5 * k * (sM.transpose(-2, -1) @ q)


class SoftmaxTaylor(nn.Module):
    """softmax over the last axis with AttnLRP's rule: R_x = x (R - s sum R), the first-
    order Taylor term at x with the bias absorbed (masked -inf logits pass nothing)."""

    def __init__(self, name: str, stabilizer: float) -> None:
        super().__init__()
        self.name = name

    def forward(self, x):
        return _SoftmaxStep.apply(x)


class _SoftmaxStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = x.softmax(-1)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, R):
        x, y = ctx.saved_tensors
        x = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
        return x * (R - y * R.sum(-1, keepdim=True))
