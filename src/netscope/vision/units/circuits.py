"""Circuits: which units of an earlier layer make a unit of a later one, and which classes a
unit of the pooled layer supports.

Unit-to-unit: for unit u of layer L at its maximum (y, x) on each of its top images, the
gradient of that activation with respect to the earlier layer E, times E's activation,
summed over E's positions: the first-order share of each earlier unit in u's value. It
follows residual branches, depthwise convolutions and anything else between E and L as
they are, because it is the network's own gradient. Averaged over u's top images.

Classes: for the layer whose spatial mean the classifier reads (global average pooling then
one linear layer, checked numerically on a probe), unit u's mean contribution to class c
over the dataset is W[c, u] times u's mean pooled activation: the logit is exactly linear
in the pooled activations there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from netscope.errors import NetscopeError, first_line
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.targets import class_output
from netscope.vision.core.token_grid import Layout
from netscope.vision.units.streaming import UnitState

CHUNK = 64  # gradients taken together (vectorized over the backward pass)


def unit_circuits(model: nn.Module, load: Callable[[list[int]], torch.Tensor],
                  earlier: str, later: str, layouts: dict[str, Layout], state: UnitState,
                  progress: Callable[[str], None] | None = None) -> np.ndarray:
    """(units of ``later``, units of ``earlier``): each earlier unit's mean contribution to
    each later unit at its top images (see the module docstring); ``load(indices)`` gives
    the preprocessed images of those file indices."""
    say = progress or (lambda message: None)
    wanted = defaultdict(list)  # image -> [(unit, y, x)]
    a = state.arrays
    for u in range(state.units):
        for r in range(state.k):
            if a["top_image"][u, r] >= 0:
                wanted[int(a["top_image"][u, r])].append((u, int(a["top_y"][u, r]),
                                                          int(a["top_x"][u, r])))
    total, count = None, np.zeros(state.units)
    for done, image in enumerate(sorted(wanted)):
        terms = _image_terms(model, load([image]), earlier, later, layouts, wanted[image])
        if total is None:
            total = np.zeros((state.units, terms.shape[1]))
        for (u, _, _), row in zip(wanted[image], terms, strict=True):
            total[u] += row
            count[u] += 1
        if done % 10 == 9:
            say(f"circuits {earlier} -> {later}: {done + 1}/{len(wanted)} images")
    if total is None:
        raise NetscopeError(f"layer {later} has no recorded examples to trace.")
    return total / np.maximum(count, 1)[:, None]


def _image_terms(model, x, earlier, later, layouts, picks) -> np.ndarray:
    e_ref, l_ref = LayerRef.parse(earlier), LayerRef.parse(later)
    with capture(model, [e_ref], cut=True) as rec_e, capture(model, [l_ref]) as rec_l, \
            torch.enable_grad():
        model(x)
        leaf = rec_e[e_ref]
        grid_l = layouts[later].to_grid(rec_l[l_ref])
        values = torch.stack([grid_l[0, u, y, xx] for u, y, xx in picks])
        if not values.requires_grad:
            raise NetscopeError(f"layer {later} does not depend on layer {earlier}; choose "
                                f"an earlier layer that feeds it.")
        grads = _batched_grads(values, leaf)
    e_grid = layouts[earlier].to_grid(leaf.detach()).float()
    g_grid = layouts[earlier].to_grid(grads.flatten(0, 1)).float()  # (J, C, h, w)
    return (g_grid * e_grid).sum((2, 3)).cpu().numpy()


def _batched_grads(values: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
    """(J, *leaf.shape): the gradient of each value with respect to ``leaf``."""
    out = []
    for start in range(0, len(values), CHUNK):
        part = values[start:start + CHUNK]
        eye = torch.eye(len(part), dtype=part.dtype, device=part.device)
        try:
            (g,) = torch.autograd.grad(part, leaf, grad_outputs=eye, is_grads_batched=True,
                                       retain_graph=True)
        except RuntimeError:  # an operation vmap cannot batch: one backward each
            g = torch.stack([torch.autograd.grad(v, leaf, retain_graph=True)[0] for v in part])
        out.append(g)
    return torch.cat(out)


def strongest(row: np.ndarray, n: int = 5) -> list[tuple[int, float]]:
    """The ``n`` largest positive entries (index, value), largest first."""
    order = np.lexsort((np.arange(len(row)), -row))
    return [(int(j), float(row[j])) for j in order[:n] if row[j] > 0]


def pooled_head(model: nn.Module, layer: str, layout: Layout,
                probe: torch.Tensor) -> tuple[np.ndarray, np.ndarray] | None:
    """(weights, bias) of the linear classifier when the logits are exactly that linear
    layer applied to the layer's spatial mean (checked on ``probe``), else None."""
    from netscope.vision.methods.class_activation import last_linear

    try:
        fc = last_linear(model)
    except NetscopeError:
        return None
    ref = LayerRef.parse(layer)
    try:
        with capture(model, [ref]) as rec, torch.no_grad():
            logits = class_output(model(probe))
            pooled = layout.to_grid(rec[ref]).float().mean((2, 3))
    except RuntimeError as exc:
        raise NetscopeError(f"the model cannot run on the probe ({first_line(exc)}).") from None
    if not isinstance(logits, torch.Tensor) or pooled.shape[1] != fc.in_features:
        return None
    bias = fc.bias.detach().float() if fc.bias is not None else torch.zeros(fc.out_features)
    again = pooled @ fc.weight.detach().float().T + bias
    scale = float(logits.float().abs().max()) + 1e-12
    if logits.shape != again.shape or float((again - logits.float()).abs().max()) > 1e-4 * scale:
        return None
    return fc.weight.detach().float().cpu().numpy(), bias.cpu().numpy()


def class_support(weights: np.ndarray, mean_pooled: np.ndarray) -> np.ndarray:
    """(units, classes): unit u's mean contribution to each class logit over the dataset."""
    return (weights * mean_pooled[None, :]).T

