"""The circuit of a class on some images: nodes are the units (or dictionary features, as a
``features_LAYER`` tap) of the chosen layers, edges the attributions between consecutive
layers, and every claim is checked by intervention.

- A node's contribution to the class score: its activation times the score's gradient,
  summed over positions (the score's first-order part through that node), averaged over
  the images. Each layer keeps its ``top`` nodes by |contribution|.
- The edge from node a (earlier layer) to node b (the next layer): a's activation times
  the gradient of b's contribution (b's activation times its class gradient, the gradient
  held fixed) with respect to a, summed over positions, averaged over the images: a's
  first-order share of b's part of the score. One batched backward pass per layer pair.
  Edges below ``share`` of the layer pair's largest |edge| are dropped.
- Where only linear operations separate two consecutive layers, their expanded weights
  (``expanded.py``) are kept beside the edges: the connection independent of the images.
- Every claim is checked by intervention in ``circuit_checks.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.concepts.expanded import Expanded, expanded_weights
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.token_grid import positions_for


@dataclass
class Circuit:
    target: int
    layers: list[str]
    nodes: dict[str, np.ndarray]  # layer -> kept node indices, by |contribution|
    contribution: dict[str, np.ndarray]  # layer -> (units,) mean contribution to the score
    edges: list[tuple[str, int, str, int, float]]  # (layer, node, next layer, node, weight)
    score: float  # mean class score
    checks: dict = field(default_factory=dict)  # filled by validate()
    expanded: dict[tuple[str, str], Expanded] = field(default_factory=dict)  # layer pairs
    relevance: str = "gradient"  # how nodes and edges were measured ("gradient", "lrp")
    # per image, for "lrp" (whose claims are not first-order): layer -> (n, units) node
    # relevance; (a, i, b, j) -> (n,) edge relevance
    each: dict = field(default_factory=dict)

    def expanded_weight(self, a: str, i: int, b: str, j: int) -> float | None:
        """The expanded weight of an edge (None where the layers are not linearly joined)."""
        e = self.expanded.get((a, b))
        if e is None or not e.linear:
            return None
        return e.weight(list(self.nodes[b]).index(j), i)

    def as_dict(self) -> dict:
        return {"target": self.target, "layers": self.layers, "score": self.score,
                "relevance": self.relevance,
                "nodes": [{"layer": name, "node": int(j),
                           "contribution": float(self.contribution[name][j])}
                          for name in self.layers for j in self.nodes[name]],
                "edges": [{"from_layer": a, "from": int(i), "to_layer": b, "to": int(j),
                           "weight": float(w),
                           "expanded_weight": self.expanded_weight(a, i, b, j)}
                          for a, i, b, j, w in self.edges],
                "linear_paths": [{"from_layer": a, "to_layer": b, "linear": e.linear,
                                  "affine_gap": e.gap} for (a, b), e in self.expanded.items()],
                "checks": self.checks}


def class_circuit(model: nn.Module, x: torch.Tensor, target: int, layers: list[str],
                  top: int = 6, share: float = 0.05, expanded: bool = True,
                  relevance: str = "gradient") -> Circuit:
    """The circuit of class ``target`` on images ``x`` through ``layers`` (in the order the
    network runs them; see the module docstring); ``expanded``: look for linear paths
    between consecutive layers and keep their expanded weights; ``relevance="lrp"``: nodes
    and edges by LRP and concept-conditional relevance (``circuit_lrp.py``)."""
    if len(layers) < 1:
        raise NetscopeError("name at least one layer for the circuit.")
    if relevance == "lrp":
        from netscope.vision.concepts.circuit_lrp import lrp_circuit

        made = lrp_circuit(model, x, target, layers, top, share)
        if expanded:
            made.expanded = _joined(model, x, layers, made.nodes)
        return made
    if relevance != "gradient":
        raise NetscopeError(f"relevance must be gradient or lrp, got {relevance!r}.")
    refs = [LayerRef.parse(n) for n in layers]
    with capture(model, refs) as rec, torch.enable_grad():
        scores = model(x.detach().requires_grad_(True))  # so every layer carries gradient
        if not 0 <= target < scores.shape[-1]:
            raise NetscopeError(f"class {target} is not one of the model's {scores.shape[-1]} "
                                f"classes.")
        acts = [rec[r] for r in refs]
        for name, a in zip(layers, acts, strict=True):
            if not a.requires_grad:
                raise NetscopeError(f"the class score does not depend on layer {name}.")
        grads = torch.autograd.grad(scores[:, target].sum(), acts, retain_graph=True)
    size = tuple(x.shape[-2:])
    lay = [positions_for(model, a, size, n) for a, n in zip(acts, layers, strict=True)]
    contribution = {}
    for name, a, g, lo in zip(layers, acts, grads, lay, strict=True):
        c = (lo.to_grid(a.detach()).float() * lo.to_grid(g).float()).sum((2, 3)).mean(0)
        contribution[name] = c.cpu().numpy()
    nodes = keep(contribution, top)
    edges = []
    for (a_name, b_name) in zip(layers, layers[1:], strict=False):
        edges += _edges(model, x, target, a_name, b_name, nodes, size, share)
    return Circuit(target, list(layers), nodes, contribution, edges,
                   float(scores[:, target].detach().mean()),
                   expanded=_joined(model, x, layers, nodes) if expanded else {})


def _joined(model, x, layers, nodes) -> dict[tuple[str, str], Expanded]:
    """Expanded weights of each consecutive layer pair (see ``expanded.py``)."""
    return {(a, b): expanded_weights(model, x, a, b, [int(j) for j in nodes[b]])
            for a, b in zip(layers, layers[1:], strict=False)}


def keep(contribution: dict[str, np.ndarray], top: int) -> dict[str, np.ndarray]:
    """Each layer's ``top`` nodes by |contribution| (ties to the lower index)."""
    return {name: np.lexsort((np.arange(len(c)), -np.abs(c)))[:top]
            for name, c in contribution.items()}


def _edges(model, x, target, a_name, b_name, nodes, size, share) -> list:
    """Edges from the kept nodes of ``a_name`` to those of ``b_name``."""
    g, a_grid = edge_gradients(model, x, target, a_name, b_name, nodes[b_name], size)
    terms = (g * a_grid[None]).sum((1, 3, 4)) / len(x)  # (kept b, units of a)
    terms = terms.cpu().numpy()[:, nodes[a_name]]  # (kept b, kept a)
    biggest = float(np.abs(terms).max()) if terms.size else 0.0
    out = []
    for jb, b_node in enumerate(nodes[b_name]):
        for ja, a_node in enumerate(nodes[a_name]):
            w = float(terms[jb, ja])
            if biggest > 0 and abs(w) >= share * biggest:
                out.append((a_name, int(a_node), b_name, int(b_node), w))
    return out


def edge_gradients(model, x, target, a_name, b_name, b_nodes, size
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient of each of ``b_nodes``' contributions (b's activation times its class
    gradient, held fixed) with respect to layer ``a_name`` on its grid, (kept b, n, C, h,
    w), in one batched backward pass; and a's activations on its grid (n, C, h, w)."""
    a_ref, b_ref = LayerRef.parse(a_name), LayerRef.parse(b_name)
    with capture(model, [a_ref], cut=True) as rec_a, capture(model, [b_ref]) as rec_b, \
            torch.enable_grad():
        scores = model(x)
        leaf, b = rec_a[a_ref], rec_b[b_ref]
        if not b.requires_grad:
            raise NetscopeError(f"layer {b_name} does not depend on layer {a_name}; list the "
                                f"layers in the order the network runs them.")
        (g_b,) = torch.autograd.grad(scores[:, target].sum(), b, retain_graph=True)
        lb = positions_for(model, b, size, b_name)
        part = lb.to_grid(b).float() * lb.to_grid(g_b.detach()).float()  # (n, C, h, w)
        values = part.sum((2, 3)).sum(0)[torch.as_tensor(b_nodes)]  # per kept b node
        eye = torch.eye(len(values), dtype=values.dtype, device=values.device)
        (g,) = torch.autograd.grad(values, leaf, grad_outputs=eye, is_grads_batched=True)
    la = positions_for(model, leaf, size, a_name)
    return (torch.stack([la.to_grid(gj).float() for gj in g]),
            la.to_grid(leaf.detach()).float())


