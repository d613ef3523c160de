"""The circuit of a class by relevance (concept relevance propagation, Achtibat et al. 2023;
zennit-crp's attribution graph): a node's weight is the LRP relevance of the class that
reaches it (summed over positions, mean over the images); the edge from node a to a later
node b is the relevance that reaches a when only b passes relevance on: a's share of b's
relevance.

Units are conditioned by letting one channel's relevance pass (a one-hot weight on the
layer's output); dictionary features (a tap's layer) by letting only their share of the
layer's relevance pass (the z-rule through codes times atoms: ``lrp(weigh=...)``), and
the relevance that reaches them is their part of their layer's, split the same way. Every
conditioning reuses one relevance graph: one LRP pass for the nodes, one per kept node of
every layer after the first for the edges.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.concepts.circuit import Circuit, keep
from netscope.vision.concepts.tap import feature_share, stabilized
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.token_grid import layout_for, positions_for


def lrp_circuit(model: nn.Module, x: torch.Tensor, target: int, layers: list[str],
                top: int = 6, share: float = 0.05) -> Circuit:
    """See the module docstring; ``share`` drops edges below that share of the layer
    pair's largest |edge|."""
    from netscope.vision.methods.relevance.propagate import lrp

    with torch.no_grad():
        scores = model(x)
    if not 0 <= target < scores.shape[-1]:
        raise NetscopeError(f"class {target} is not one of the model's {scores.shape[-1]} "
                            f"classes.")
    reads = _Reads(model, x, layers)
    labels = [target] * len(x)
    whole = lrp(model, x, labels, units=reads.modules)
    each = {name: reads.per_unit(name, whole.extras["unit_relevance"]) for name in layers}
    contribution = {name: r.mean(0) for name, r in each.items()}
    nodes = keep(contribution, top)
    edges, edge_each = [], {}
    for a, b in zip(layers, layers[1:], strict=False):
        terms = {}
        for j in (int(v) for v in nodes[b]):
            heat = lrp(model, x, labels, units=reads.modules, weigh=reads.only(b, j))
            r = reads.per_unit(a, heat.extras["unit_relevance"])  # (n, units of a)
            for i in (int(v) for v in nodes[a]):
                terms[(i, j)] = r[:, i]
        biggest = max((abs(float(v.mean())) for v in terms.values()), default=0.0)
        for (i, j), v in terms.items():
            w = float(v.mean())
            if biggest > 0 and abs(w) >= share * biggest:
                edges.append((a, i, b, j, w))
                edge_each[(a, i, b, j)] = v
    return Circuit(target, list(layers), nodes, contribution, edges,
                   float(scores[:, target].float().mean()),
                   relevance="lrp", each={"nodes": each, "edges": edge_each})


class _Reads:
    """What each circuit layer reads in the relevance graph: a unit layer its own output, a
    dictionary's features the output of the layer they read (and the activations there)."""

    def __init__(self, model: nn.Module, x: torch.Tensor, layers: list[str]) -> None:
        modules = dict(model.named_modules())
        self.size = tuple(x.shape[-2:])
        self.taps = {n: modules[n] for n in layers
                     if hasattr(modules.get(n), "feature_relevance")}
        self.base = {n: (self.taps[n].layer if n in self.taps else n) for n in layers}
        for n in layers:
            ref = LayerRef.parse(self.base[n])
            if ref.port != "output" or ref.call != -1 or ref.name not in modules:
                raise NetscopeError(f"an LRP circuit reads modules' outputs; {n} is not one "
                                    f"(use --relevance gradient).")
        self.modules = sorted(set(self.base.values()))
        refs = [LayerRef.parse(m) for m in self.modules]
        with capture(model, refs) as rec, torch.no_grad():
            model(x)
        self.raw = {m: rec[r] for m, r in zip(self.modules, refs, strict=True)}
        # units: every position (a ViT's class token too); features: the patch grid their
        # tap reads
        self.view = {n: (layout_for if n in self.taps else positions_for)(
            model, self.raw[self.base[n]], self.size, self.base[n]) for n in layers}
        self.acts = {n: self.view[n].to_grid(self.raw[self.base[n]]).float() for n in layers}

    def per_unit(self, name: str, seen: dict[str, torch.Tensor]) -> np.ndarray:
        """(n, units) relevance of a circuit layer's nodes from the relevance at the modules'
        outputs."""
        grid = self.view[name].to_grid(seen[self.base[name]]).float()
        if name in self.taps:
            grid = self.taps[name].feature_relevance(self.acts[name], grid / stabilized(
                self.acts[name]))
        return grid.sum((2, 3)).detach().cpu().numpy()

    def only(self, name: str, j: int) -> dict[str, torch.Tensor]:
        """The weight that lets only node j of layer ``name`` pass relevance on (for a
        feature: its share of each value of the patch grid; prefix tokens pass nothing)."""
        m = self.base[name]
        if name in self.taps:
            grid = feature_share(self.taps[name], self.acts[name], j)
        else:
            grid = torch.zeros_like(self.acts[name])
            grid[:, j] = 1
        zeros = torch.zeros_like(self.raw[m])
        return {m: self.view[name].from_grid(grid.to(zeros.dtype), zeros)}
