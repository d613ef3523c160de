"""Conductance (Dhamdhere et al. 2018; Captum's ``LayerConductance`` and
``NeuronConductance``): Integrated Gradients split by the hidden units the path flows
through.

- Layer conductance of unit u: the sum over the path's steps of dF/du times the change of u
  between consecutive points, from the baseline to the image. Summed over a layer that
  every path crosses, it is F(x) - F(baseline). The map is its positive part summed over
  channels, on the layer's grid (as a CAM); the units' values are in ``extras["units"]``
  (N, C, h, w).
- Neuron conductance of a channel: each input value's share of the flow through that
  channel (every position of it, or one ``position``): (x - x') times the path integral of
  sum_ij dF/dA_cij dA_cij/dx. For one position it is Captum's neuron conductance; for a
  channel it is the sum of its positions' (Captum's callable selector multiplies the summed
  gradient by the summed input gradient instead, which is not a flow through the units).

The path is the trapezoid rule over ``steps`` intervals (steps + 1 points, as Integrated
Gradients here; Captum's ``method="riemann_trapezoid"`` with n_steps = steps for layer
conductance, steps + 1 for neuron conductance); Captum's default Gauss-Legendre points
never reach the image or the baseline, so its layer conductance does not telescope to
F(x) - F(baseline).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.batched import (
    BATCH,
)
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps, reduced
from netscope.vision.core.layer_choice import default_layer
from netscope.vision.core.targets import Resolved, TargetLike
from netscope.vision.methods.grad_cam_family import layer_gradients
from netscope.vision.methods.straight_path import straight_path


@checked_images
def layer_conductance(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
                      layer: str | LayerRef | None = None, baseline: str | torch.Tensor = "zeros",
                      steps: int = 32, batch_size: int = BATCH,
                      normalize: str = "max") -> Heatmaps:
    """Each unit's conductance at ``layer`` (module docstring)."""
    p = straight_path(model, x, targets, baseline, steps, batch_size)
    layer = layer or default_layer(model, x)
    acts, grads = [], []
    for img, _, points in p.batches(batch_size):
        A, g, _, _ = layer_gradients(model, points, layer, p.t[img])
        acts.append(A)
        grads.append(g)
    n = x.shape[0]
    A = torch.cat(acts).view(n, len(p.alphas), *acts[0].shape[1:])
    g = torch.cat(grads).view(n, len(p.alphas), *grads[0].shape[1:])
    units = (g[:, :-1] * (A[:, 1:] - A[:, :-1])).sum(1)
    maps = F.relu(units.sum(1))
    return Heatmaps(normalize_maps(maps, normalize), p.logits, p.t, p.t.labels, str(layer),
                    "layer-conductance", normalize,
                    extras={"units": units, "delta": p.delta,
                            "layer_total": units.flatten(1).sum(1)})


@checked_images
def neuron_conductance(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
                       layer: str | LayerRef | None = None, unit: int = 0,
                       position: tuple[int, int] | None = None,
                       baseline: str | torch.Tensor = "zeros", steps: int = 32,
                       batch_size: int = BATCH, normalize: str = "max") -> Heatmaps:
    """Each input value's conductance through channel ``unit`` of ``layer`` (one
    ``position`` (i, j) of it, or all), module docstring; signed values in
    ``attributions``, ``extras["unit_total"]`` their sum per image."""
    p = straight_path(model, x, targets, baseline, steps, batch_size)
    layer = layer or default_layer(model, x)
    total = torch.zeros_like(x)
    for img, k, points in p.batches(batch_size):
        g = _flow_gradient(model, points, layer, p.t[img], unit, position)
        total.index_add_(0, img, g * p.weights[k].view(-1, 1, 1, 1))
    attr = (x - p.base) * total
    return Heatmaps(normalize_maps(reduced(attr, "abs-sum"), normalize), p.logits, p.t,
                    p.t.labels, "input", "neuron-conductance", normalize, attributions=attr,
                    reduction="abs-sum",
                    extras={"unit_total": attr.flatten(1).sum(1).detach()})


def _flow_gradient(model: nn.Module, x: torch.Tensor, layer, t: Resolved, unit: int,
                   position: tuple[int, int] | None) -> torch.Tensor:
    """d/dx of sum_ij (dF/dA_cij, held fixed) A_cij over the unit's positions: the input
    gradient of the flow through the unit."""
    ref = LayerRef.parse(layer)
    xi = x.detach().clone().requires_grad_(True)
    with capture(model, [ref]) as rec:
        out = model(xi)
        A = rec[ref]
        if A.dim() != 4:
            raise NetscopeError(f"neuron conductance needs a layer with channels and a grid "
                                f"(N, C, h, w); {layer} gives {tuple(A.shape)}.")
        if not 0 <= unit < A.shape[1]:
            raise NetscopeError(f"layer {layer} has {A.shape[1]} channels (0..{A.shape[1] - 1})"
                                f"; unit {unit} does not exist.")
        score = t.score(out).sum()
        (g,) = torch.autograd.grad(score, A, retain_graph=True)
        keep = torch.zeros_like(A)
        if position is None:
            keep[:, unit] = 1
        else:
            i, jj = position
            if not (0 <= i < A.shape[2] and 0 <= jj < A.shape[3]):
                raise NetscopeError(f"position {tuple(position)} is outside layer {layer}'s "
                                    f"{A.shape[2]}x{A.shape[3]} grid.")
            keep[:, unit, i, jj] = 1
        (dx,) = torch.autograd.grad((g.detach() * keep * A).sum(), xi, allow_unused=True)
    return torch.zeros_like(xi) if dx is None else dx
