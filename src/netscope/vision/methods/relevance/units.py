"""The modules relevance flows through in the rewritten graph: each computes its forward
as the layer does and, in the backward pass, hands relevance down by its rule."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.methods.relevance.rules import Layer, Rule, share


class Unit(nn.Module):
    """One layer with its rule: forward as the layer, backward by the rule."""

    def __init__(self, layer: Layer, rule: Rule, op: Callable | None = None) -> None:
        super().__init__()
        self.layer, self.rule, self.op = layer, rule, op

    def forward(self, x):
        return _RuleStep.apply(x, self)


class _RuleStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, unit: Unit):
        ctx.unit = unit
        if unit.op is not None:  # an activation or batch norm: its own function
            ctx.save_for_backward(x)
            return unit.op(x)
        y = unit.layer.fn(x, unit.layer.weight, unit.layer.bias)
        ctx.save_for_backward(x, y)  # rules that normalize by the output reuse it
        return y

    @staticmethod
    def backward(ctx, R):
        x, *y = ctx.saved_tensors
        return ctx.unit.rule.relevance(ctx.unit.layer, x, R, y[0] if y else None), None


class Sum(nn.Module):
    """a + b with the relevance split in proportion: R_a = a R / (a + b), R_b likewise."""

    def __init__(self, name: str, stabilizer: float) -> None:
        super().__init__()
        self.name, self.stabilizer = name, stabilizer

    def forward(self, a, b):
        return _SumStep.apply(a, b, self.stabilizer)


class _SumStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, stabilizer: float):
        ctx.save_for_backward(a, b)
        ctx.stabilizer = stabilizer
        return a + b

    @staticmethod
    def backward(ctx, R):
        a, b = ctx.saved_tensors
        s = share(R, a + b, ctx.stabilizer)
        return (a * s).sum_to_size(a.shape), (b * s).sum_to_size(b.shape), None


class Probe(nn.Module):
    """Identity in the forward pass; in the backward pass it keeps the relevance reaching
    a layer's output (``seen``) and, for concept relevance, lets only ``channels`` pass, or
    passes each value's relevance times ``weight`` (shaped as the layer's output: a
    direction's share of each value, set for one call)."""

    def __init__(self, layer: str, channels: tuple[int, ...] | None) -> None:
        super().__init__()
        self.layer, self.channels = layer, channels
        self.seen: torch.Tensor | None = None
        self.weight: torch.Tensor | None = None

    def forward(self, x):
        return _ProbeStep.apply(x, self)


class _ProbeStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, probe: Probe):
        ctx.probe = probe
        return x.view_as(x)

    @staticmethod
    def backward(ctx, R):
        probe = ctx.probe
        probe.seen = R.detach()
        if probe.weight is not None:
            if probe.weight.shape != R.shape:
                raise NetscopeError(f"layer {probe.layer}: the relevance weight has shape "
                                    f"{tuple(probe.weight.shape)}, the layer's output "
                                    f"{tuple(R.shape)}.")
            return R * probe.weight.to(R.dtype), None
        if probe.channels is None:
            return R, None
        if R.dim() < 2 or max(probe.channels) >= R.shape[1] or min(probe.channels) < 0:
            raise NetscopeError(f"layer {probe.layer} has {R.shape[1] if R.dim() > 1 else 0} "
                                f"channels; channels {list(probe.channels)} do not all exist.")
        keep = torch.zeros(R.shape[1], dtype=R.dtype, device=R.device)
        keep[list(probe.channels)] = 1
        return R * keep.view(1, -1, *([1] * (R.dim() - 2))), None


def dense_transpose(s: torch.Tensor, w: torch.Tensor, shape) -> torch.Tensor:
    return s @ w


def conv_transpose(fn, stride=1, padding=0, dilation=1, groups=1):
    """J^T s of a 2-D convolution as the transposed convolution itself (no forward pass);
    None for other convolutions, which then go through autograd."""
    if fn not in (F.conv2d, torch.conv2d) or isinstance(padding, str):
        return None

    def transpose(s, w, shape):
        return torch.nn.grad.conv2d_input(shape, w, s, stride, padding, dilation, groups)
    return transpose


