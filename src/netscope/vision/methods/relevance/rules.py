"""LRP rules: how one layer hands the relevance R at its output down to its input.

A linear layer is y = f(x, W, b) (a convolution, any groups, or a dense layer). Every rule
below is R_in = sum_k m_k(x) * J_k^T (s_k), where J_k is f's Jacobian in x under modified
parameters, m_k a modified input and s_k the output relevance divided by a stabilized
denominator (z + eps * sign(z), sign(0) = +1). The names and conventions are Zennit's
(Anders et al. 2021) so maps can be compared with it:

- ``Epsilon(eps)``: z = f(x, W, b) (eps = 0 is LRP-0); the bias keeps its share.
- ``ZPlus``: positive contributions, f(x+, W+, b+) + f(x-, W-) (alpha-beta with 1, 0).
- ``AlphaBeta(alpha, beta)``: alpha times the positive, minus beta times the negative
  contributions (f(x+, W-, b-) + f(x-, W+)), each normalized by its own sum.
- ``Gamma(gamma)``: W + gamma W+ for outputs > 0 (and W + gamma W- for outputs < 0), in
  the generalized form that also allows negative inputs.
- ``Flat``: every input of the receptive field gets an equal share (W = 1, x = 1).
- ``WSquare``: shares by W^2 (x = 1; the bias squared too, as Zennit).
- ``ZBox(low, high)``: the first layer, with the input's bounds l <= x <= h:
  z = f(x, W) - f(l, W+) - f(h, W-).
- ``Norm``: a linear map without parameters (average pooling, a residual sum): the
  epsilon rule with a stabilizer only. ``Pass``: relevance passes unchanged (activations).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from netscope.errors import NetscopeError

LayerFn = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor | None], torch.Tensor]


Transpose = Callable[[torch.Tensor, torch.Tensor, torch.Size], torch.Tensor]


@dataclass(frozen=True)
class Layer:
    """A layer as a rule sees it: y = fn(x, weight, bias); weight None for Norm's maps.
    ``transpose(s, weight, input_shape)`` is J^T s computed directly (a transposed
    convolution, s @ W) where the layer offers it, saving a forward pass per use."""

    name: str
    fn: LayerFn
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    transpose: Transpose | None = None


def stabilize(z: torch.Tensor, eps: float) -> torch.Tensor:
    """z + eps * sign(z), with sign(0) = +1; with eps = 0, zeros stay zero (see _divide)."""
    return z + torch.where(z >= 0, eps, -eps) if eps else z


def _divide(r: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """r / z where z != 0, else 0: LRP-0 on an output that is exactly zero passes nothing."""
    ok = z != 0
    return torch.where(ok, r / torch.where(ok, z, 1.0), 0.0)


def share(r: torch.Tensor, z: torch.Tensor, eps: float) -> torch.Tensor:
    """r / stabilize(z, eps): with eps > 0 the denominator is never zero, so one division;
    with eps = 0 (LRP-0) a zero output passes nothing."""
    return r / stabilize(z, eps) if eps > 0 else _divide(r, z)


def _pullback(layer: Layer, x: torch.Tensor, weight, bias, s: torch.Tensor) -> torch.Tensor:
    """J^T s for y = fn(x, weight, bias): the layer's input gradient with cotangent s (the
    map is linear in x, so the point x only fixes the shapes)."""
    if layer.transpose is not None and weight is not None:
        return layer.transpose(s, weight, x.shape)
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(layer.fn(xg, weight, bias), xg, s)
    return g


def _out(layer: Layer, x: torch.Tensor, weight, bias) -> torch.Tensor:
    with torch.no_grad():
        return layer.fn(x, weight, bias)


def _pos(t):
    return None if t is None else t.clamp(min=0)


def _neg(t):
    return None if t is None else t.clamp(max=0)


def _bound(value, x: torch.Tensor) -> torch.Tensor:
    """A z-box bound as x's shape: a number, one value per channel, or a tensor that
    broadcasts to x."""
    t = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if t.dim() == 1 and x.dim() > 2 and t.numel() == x.shape[1]:
        t = t.view(1, -1, *([1] * (x.dim() - 2)))
    try:
        return t.expand_as(x)
    except RuntimeError:
        raise NetscopeError(f"z-box bound of shape {tuple(t.shape)} does not fit the input "
                            f"{tuple(x.shape)}: give a number, one value per channel, or a "
                            f"tensor of the input's shape.") from None


class Rule:
    """A rule: ``relevance(layer, x, R)`` gives the input relevance for output relevance R."""

    needs_params = True

    def relevance(self, layer: Layer, x: torch.Tensor, R: torch.Tensor,
                  y: torch.Tensor | None = None) -> torch.Tensor:
        """``y`` is the layer's output as the forward pass computed it (when known)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Pass(Rule):
    """Relevance passes unchanged (elementwise activations, a left-over batch norm)."""

    needs_params = False

    def relevance(self, layer, x, R, y=None):
        return R


class Epsilon(Rule):
    needs_params = False  # a parameter-free linear map works too (it is then Norm)

    def __init__(self, epsilon: float = 1e-6) -> None:
        if not epsilon >= 0:
            raise NetscopeError(f"epsilon must be >= 0 (0 is LRP-0), got {epsilon}.")
        self.epsilon = float(epsilon)

    def relevance(self, layer, x, R, y=None):
        z = _out(layer, x, layer.weight, layer.bias) if y is None else y
        s = share(R, z, self.epsilon)
        return x * _pullback(layer, x, layer.weight, layer.bias, s)


class Norm(Epsilon):
    """The epsilon rule for a parameter-free linear map (pooling, sums)."""


class AlphaBeta(Rule):
    def __init__(self, alpha: float = 2.0, beta: float = 1.0, stabilizer: float = 1e-6) -> None:
        if alpha < 0 or beta < 0 or alpha - beta != 1:
            raise NetscopeError(f"alpha-beta needs alpha, beta >= 0 and alpha - beta = 1 (so "
                                f"relevance is conserved), got alpha={alpha}, beta={beta}.")
        self.alpha, self.beta, self.stabilizer = float(alpha), float(beta), float(stabilizer)

    def relevance(self, layer, x, R, y=None):
        xp, xn, W, b = x.clamp(min=0), x.clamp(max=0), layer.weight, layer.bias
        out = self._side(layer, xp, xn, _pos(W), _neg(W), _pos(b), R)
        if self.beta == 0:
            return out
        return self.alpha * out - self.beta * self._side(layer, xp, xn, _neg(W), _pos(W),
                                                         _neg(b), R)

    def _side(self, layer, xp, xn, w_for_pos, w_for_neg, bias, R):
        """Contributions of one sign: x+ through ``w_for_pos`` (with ``bias``) plus x-
        through ``w_for_neg``, normalized by their sum."""
        negative = bool((xn < 0).any())  # after a ReLU there is none: skip that half
        z = _out(layer, xp, w_for_pos, bias)
        if negative:
            z = z + _out(layer, xn, w_for_neg, None)
        s = share(R, z, self.stabilizer)
        out = xp * _pullback(layer, xp, w_for_pos, bias, s)
        return out + xn * _pullback(layer, xn, w_for_neg, None, s) if negative else out


class ZPlus(AlphaBeta):
    def __init__(self, stabilizer: float = 1e-6) -> None:
        super().__init__(1.0, 0.0, stabilizer)


class Gamma(Rule):
    def __init__(self, gamma: float = 0.25, stabilizer: float = 1e-6) -> None:
        if not gamma >= 0:
            raise NetscopeError(f"gamma must be >= 0 (0 is LRP-0), got {gamma}.")
        self.gamma, self.stabilizer = float(gamma), float(stabilizer)

    def relevance(self, layer, x, R, y=None):
        g, W, b = self.gamma, layer.weight, layer.bias
        up = (W + g * W.clamp(min=0), None if b is None else b + g * b.clamp(min=0))
        down = (W + g * W.clamp(max=0), None if b is None else b + g * b.clamp(max=0))
        z = _out(layer, x, W, b) if y is None else y
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        negative = bool((xn < 0).any())  # after a ReLU there is none: skip those terms
        total = torch.zeros_like(x)
        # outputs > 0: x+ through W + g W+ (with its bias), x- through W + g W-; outputs < 0:
        # the other way round
        for keep, (wa, ba), (wb, _) in ((z > 0, up, down), (z < 0, down, up)):
            if not bool(keep.any()):
                continue
            denom = _out(layer, xp, wa, ba)
            if negative:
                denom = denom + _out(layer, xn, wb, None)
            s = share(R * keep, denom, self.stabilizer)
            total = total + xp * _pullback(layer, xp, wa, ba, s)
            if negative:
                total = total + xn * _pullback(layer, xn, wb, None, s)
        return total


class Flat(Rule):
    def __init__(self, stabilizer: float = 1e-6) -> None:
        self.stabilizer = float(stabilizer)

    def relevance(self, layer, x, R, y=None):
        ones, w = torch.ones_like(x), torch.ones_like(layer.weight)
        z = _out(layer, ones, w, None)
        return _pullback(layer, ones, w, None, share(R, z, self.stabilizer))


class WSquare(Rule):
    def __init__(self, stabilizer: float = 1e-6) -> None:
        self.stabilizer = float(stabilizer)

    def relevance(self, layer, x, R, y=None):
        ones, w = torch.ones_like(x), layer.weight ** 2
        b = None if layer.bias is None else layer.bias ** 2
        z = _out(layer, ones, w, b)
        return _pullback(layer, ones, w, b, share(R, z, self.stabilizer))


class ZBox(Rule):
    def __init__(self, low, high, stabilizer: float = 1e-6) -> None:
        self.low, self.high, self.stabilizer = low, high, float(stabilizer)

    def relevance(self, layer, x, R, y=None):
        low, high = _bound(self.low, x), _bound(self.high, x)
        if bool((low > high).any()):
            raise NetscopeError("z-box: the lower input bound is above the upper one.")
        W = layer.weight
        z = _out(layer, x, W, None) - _out(layer, low, W.clamp(min=0), None) - \
            _out(layer, high, W.clamp(max=0), None)
        s = share(R, z, self.stabilizer)
        return x * _pullback(layer, x, W, None, s) - \
            low * _pullback(layer, low, W.clamp(min=0), None, s) - \
            high * _pullback(layer, high, W.clamp(max=0), None, s)
