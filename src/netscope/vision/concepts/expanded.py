"""Expanded weights (OpenAI's Circuits thread, "Visualizing Weights"): when only linear
operations (convolutions, batch norm, average pooling, additions) separate two layers, unit
j of the later layer is a fixed linear function of the earlier layer, and its kernel over
each earlier unit, the product of the weights on every path between them, says exactly how
the two connect, independent of any image.

The kernel is read as the Jacobian of the later unit at the centre of its grid with respect
to the earlier layer, cropped to where it is non-zero. The path must be affine for that to
mean anything: the whole later layer f is checked, with the earlier layer set to random
points p, q and the images' activations a, for f(a + p) - f(a) = f(p) - f(0) and
f(-q) - f(0) = -(f(q) - f(0)); a ReLU (or any other nonlinearity) on the path flips some of
its many units' signs between those points, and the pair is reported as not linear (its
attributions stay the only account of the edge).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.token_grid import layout_for


@dataclass
class Expanded:
    earlier: str
    later: str
    kernels: np.ndarray | None  # (later units, earlier units, kh, kw); None: not linear
    box: tuple[int, int, int, int] | None  # rows, columns of the earlier grid read (y0, y1, x0, x1)
    gap: float  # largest Jacobian difference between the test points (relative)

    @property
    def linear(self) -> bool:
        return self.kernels is not None

    def weight(self, later_unit: int, earlier_unit: int) -> float:
        """The kernel's sum: the later unit's response to a uniform unit of the earlier."""
        return float(self.kernels[later_unit, earlier_unit].sum())


def expanded_weights(model: nn.Module, x: torch.Tensor, earlier: str, later: str,
                     later_units: list[int], tol: float = 1e-4) -> Expanded:
    """Expanded weights from every unit of ``earlier`` to ``later_units`` of ``later`` (see
    the module docstring), on the grid the image ``x[:1]`` gives."""
    x = x[:1]
    size = tuple(x.shape[-2:])
    with capture(model, [LayerRef.parse(earlier)]) as rec, torch.no_grad():
        model(x)
    a = rec[LayerRef.parse(earlier)].detach()
    gap = _affine_gap(model, x, earlier, later, a)
    if gap > tol:
        return Expanded(earlier, later, None, None, gap)
    j = _jacobian(model, x, earlier, later, later_units, a, size)  # (later units, C, h, w)
    scale = float(j.abs().max()) or 1.0
    rows = torch.nonzero(j.abs().sum((0, 1, 3)) > 1e-12 * scale).flatten()
    cols = torch.nonzero(j.abs().sum((0, 1, 2)) > 1e-12 * scale).flatten()
    if len(rows) == 0:
        return Expanded(earlier, later, np.zeros((*j.shape[:2], 1, 1), np.float32),
                        (0, 1, 0, 1), gap)
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return Expanded(earlier, later, j[:, :, y0:y1, x0:x1].cpu().numpy(), (y0, y1, x0, x1),
                    gap)


def _affine_gap(model, x, earlier, later, a) -> float:
    """How far the map from layer ``earlier`` to layer ``later`` is from affine (relative to
    the size of its changes; see the module docstring)."""
    gen = torch.Generator().manual_seed(0)

    def f(point: torch.Tensor) -> torch.Tensor:
        with capture(model, [LayerRef.parse(earlier)], edit=lambda _: point), \
                capture(model, [LayerRef.parse(later)]) as rec, torch.no_grad():
            model(x)
        return rec[LayerRef.parse(later)].double()

    zero, at_a, worst = f(torch.zeros_like(a)), None, 0.0
    for size in (1.0, 10.0, 100.0):  # points far enough to cross any offset on the path
        p, q = (size * (a.abs().mean() + 1e-6) * torch.randn(a.shape, generator=gen).to(a)
                for _ in range(2))
        moved_p, moved_q = f(p) - zero, f(q) - zero
        scale = max(float(moved_p.abs().max()), float(moved_q.abs().max()), 1e-30)
        at_a = f(a) if at_a is None else at_a
        worst = max(worst, float((f(a + p) - at_a - moved_p).abs().max()) / scale,
                    float((f(-q) - zero + moved_q).abs().max()) / scale)
    return worst


def _jacobian(model, x, earlier, later, units, point, size) -> torch.Tensor:
    """d later[units] at the centre of its grid / d earlier, with the earlier layer's
    output set to ``point``: (units, C, h, w) on the earlier grid."""
    leaf = point.detach().clone().requires_grad_(True)
    with capture(model, [LayerRef.parse(earlier)], edit=lambda _: leaf), \
            capture(model, [LayerRef.parse(later)]) as rec, torch.enable_grad():
        model(x)
        b = rec[LayerRef.parse(later)]
        grid = layout_for(model, b, size, later).to_grid(b)
        cy, cx = grid.shape[2] // 2, grid.shape[3] // 2
        values = grid[0, torch.as_tensor(units), cy, cx].float()
        if not values.requires_grad:
            return torch.zeros(len(units), *layout_for(model, leaf, size, earlier)
                               .to_grid(leaf).shape[1:])
        eye = torch.eye(len(units), dtype=values.dtype, device=values.device)
        (g,) = torch.autograd.grad(values, leaf, grad_outputs=eye, is_grads_batched=True)
    lo = layout_for(model, leaf, size, earlier)
    return torch.stack([lo.to_grid(gj)[0].float() for gj in g]).detach()
