"""Proof by intervention of a circuit: every node and edge it claims is checked by changing
the node in the network and measuring what happens, all interventions of a layer in one
batched forward pass.

A node is changed in one of three ways (``ablation``): ``"zero"`` (removed: for a dictionary
feature its part of the layer is subtracted), ``"mean"`` (set to its mean over the positions
of reference images, ``source``, by default the explained ones: with a global average pool
and a linear head the mean change over the same images is then zero) or ``"patch"`` (set to
what it is on other images, ``source``, by default the explained ones shifted by one). With r the
replacement and a the activation, the attributions predict, to first order:

- the class score moves by the sum over positions of (r - a) times the score's gradient
  (for ``"zero"``: minus the node's contribution);
- a later node's contribution (its activation times its class gradient, held fixed) moves
  by the sum of (r - a) times that contribution's gradient (for ``"zero"``: minus the
  edge's weight).

Completeness: the score kept when every node of a layer outside the graph is changed (per
layer, and in all the graph's layers at once), as circuit-discovery work reports it.

A circuit drawn by LRP (``circuit_lrp.py``) claims what removing a node takes away: its
relevance from the score, its share of a later node's relevance from that node's part of
the score; only removal checks it.
"""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.concepts import ABLATIONS
from netscope.vision.concepts.circuit import Circuit, edge_gradients
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.token_grid import positions_for


def validate(model: nn.Module, x: torch.Tensor, circuit: Circuit, ablation: str = "zero",
             source: torch.Tensor | None = None, batch: int = 16) -> dict:
    """Check ``circuit`` on images ``x`` (see the module docstring); ``source``: the images
    ``"mean"`` averages over or ``"patch"`` takes the nodes from (repeated to ``len(x)``);
    ``batch``: images per forward pass (interventions are stacked up to it). Returns the
    checks and stores them on the circuit."""
    t, size = circuit.target, tuple(x.shape[-2:])
    if circuit.relevance == "lrp" and ablation != "zero":
        raise NetscopeError("an LRP circuit claims what removing a node takes away (its "
                            "relevance): check it with --ablation zero, or draw the circuit "
                            "with --relevance gradient to check replacements.")
    acts, grads = _grids_and_gradients(model, x, t, circuit.layers)
    with torch.no_grad():
        base_each = model(x)[:, t].float().cpu().numpy()  # (n,)
    base = float(base_each.mean())
    swap = _replacements(model, x, circuit.layers, acts, ablation, source)
    runs = _Runs(model, x, t, batch)
    nodes, edges, kept = [], [], {}
    for k, name in enumerate(circuit.layers):
        delta = swap[name] - acts[name]  # (n, C, h, w)
        units = acts[name].shape[1]
        chosen = [int(j) for j in circuit.nodes[name]]
        outside = sorted(set(range(units)) - set(chosen))
        masks = torch.zeros(len(chosen) + bool(outside), units, dtype=torch.bool)
        for r, j in enumerate(chosen):
            masks[r, j] = True
        if outside:
            masks[-1, outside] = True
        later = circuit.layers[k + 1] if k + 1 < len(circuit.layers) else None
        watched = {later: grads[later]} if later else {}
        after = runs.changed(name, masks, swap[name], watched, size)
        if later:  # each later node's contribution per image, unchanged
            after["before " + later] = (acts[later] * grads[later]).sum((2, 3)).cpu().numpy()
        kept[name] = float(after["score"][-1].mean()) if outside else base
        predicted = (-circuit.each["nodes"][name] if circuit.relevance == "lrp"
                     else (delta * grads[name]).sum((2, 3)).cpu().numpy())  # (n, C)
        for r, j in enumerate(chosen):
            nodes.append(_row("node", f"{name}:{j}", predicted[:, j],
                              after["score"][r] - base_each))
        if later:
            edges += _edge_rows(model, x, circuit, name, later, chosen, delta, after, size)
    kept["all"] = runs.all_changed(circuit, swap, size) if len(circuit.layers) > 1 \
        else kept[circuit.layers[0]]
    checks = _summary(base, nodes, edges, kept, ablation)
    checks["forward_passes"] = runs.passes + 2
    checks["images_forwarded"] = runs.images + 2 * len(x)
    circuit.checks = checks
    return checks


def _edge_rows(model, x, circuit, name, later, chosen, delta, after, size) -> list[dict]:
    """Each edge from a node of ``name``: its predicted and measured effect on its later
    node's contribution."""
    edges = [(i, j, w) for a, i, b, j, w in circuit.edges if a == name and b == later]
    if not edges:
        return []
    b_nodes = [int(j) for j in circuit.nodes[later]]
    if circuit.relevance == "lrp":  # the claim: removing i takes its share of j's relevance
        claim = {(i, j): -circuit.each["edges"][(name, i, later, j)] for i, j, _ in edges}
    else:
        g, _ = edge_gradients(model, x, circuit.target, name, later, b_nodes, size)
        moved = (g * delta[None]).sum((3, 4)).cpu().numpy()  # (kept b, n, C): first order
        claim = {(i, j): moved[b_nodes.index(j), :, i] for i, j, _ in edges}
    rows = []
    for i, j, _w in edges:
        r = chosen.index(i)
        rows.append(_row("edge", f"{name}:{i} -> {later}:{j}", claim[(i, j)],
                         after[later][r, :, j] - after["before " + later][:, j]))
    return rows


def _row(kind: str, label: str, predicted: np.ndarray, measured: np.ndarray) -> dict:
    """One claim: mean predicted and measured change over the images, and per image."""
    return {kind: label, "predicted": float(predicted.mean()),
            "measured": float(measured.mean()),
            "per_image": {"predicted": predicted.astype(float).tolist(),
                          "measured": measured.astype(float).tolist()}}


def _summary(base, nodes, edges, kept, ablation) -> dict:
    def corr(rows) -> float:  # over every (claim, image) pair
        p = np.concatenate([r["per_image"]["predicted"] for r in rows] or [[]])
        m = np.concatenate([r["per_image"]["measured"] for r in rows] or [[]])
        if len(p) < 2 or p.std() == 0 or m.std() == 0:
            return float("nan")
        return float(np.corrcoef(p, m)[0, 1])

    def wrong(rows, key) -> list[str]:
        return [r[key] for r in rows if r["predicted"] * r["measured"] < 0
                and abs(r["measured"]) > 1e-6]

    return {"ablation": ablation, "score": base, "correlation": corr(nodes),
            "wrong_sign": wrong(nodes, "node"), "nodes": nodes, "edges": edges,
            "edge_correlation": corr(edges), "edges_wrong_sign": wrong(edges, "edge"),
            "completeness": {k: (v / base if base else float("nan")) for k, v in kept.items()}}


def _grids_and_gradients(model, x, target, layers) -> tuple[dict, dict]:
    """Each layer's activations and class-score gradient on its grid (n, C, h, w)."""
    refs = [LayerRef.parse(n) for n in layers]
    with capture(model, refs) as rec, torch.enable_grad():
        scores = model(x.detach().requires_grad_(True))
        acts = [rec[r] for r in refs]
        grads = torch.autograd.grad(scores[:, target].sum(), acts)
    size = tuple(x.shape[-2:])
    los = [positions_for(model, a, size, n) for a, n in zip(acts, layers, strict=True)]
    return ({n: lo.to_grid(a.detach()).float() for n, a, lo in zip(layers, acts, los,
                                                                  strict=True)},
            {n: lo.to_grid(g).float().detach() for n, g, lo in zip(layers, grads, los,
                                                                  strict=True)})


def _grids(model, x, layers) -> dict[str, torch.Tensor]:
    """Each layer's activations on its grid (n, C, h, w)."""
    refs = [LayerRef.parse(n) for n in layers]
    with capture(model, refs) as rec, torch.no_grad():
        model(x)
    size = tuple(x.shape[-2:])
    return {n: positions_for(model, rec[r], size, n).to_grid(rec[r]).float()
            for n, r in zip(layers, refs, strict=True)}


def _replacements(model, x, layers, acts, ablation, source) -> dict[str, torch.Tensor]:
    """What each layer's changed nodes are set to, on its grid (n, C, h, w)."""
    if ablation not in ABLATIONS:
        raise NetscopeError(f"ablation {ablation!r} is not one of {', '.join(ABLATIONS)}.")
    if ablation == "zero":
        return {n: torch.zeros_like(a) for n, a in acts.items()}
    if source is None and ablation == "patch":
        if len(x) < 2:
            raise NetscopeError("patching takes each node from another image: give at least "
                                "two images, or the images to patch from.")
        source = torch.roll(x, 1, 0)
    if source is not None and source.shape[1:] != x.shape[1:]:
        raise NetscopeError(f"the reference images are {tuple(source.shape[1:])}, the "
                            f"explained ones {tuple(x.shape[1:])}: give them at one size.")
    if ablation == "mean":
        reference = acts if source is None else _grids(model, source, layers)
        return {n: reference[n].mean((0, 2, 3), keepdim=True).expand_as(a)
                for n, a in acts.items()}
    source = source[torch.arange(len(x)) % len(source)]
    patched = _grids(model, source, layers)
    for n in layers:
        if patched[n].shape != acts[n].shape:
            raise NetscopeError(f"layer {n} has shape {tuple(patched[n].shape[1:])} on the "
                                f"images to patch from, {tuple(acts[n].shape[1:])} on the "
                                f"explained ones: give images of one size.")
    return patched


class _Runs:
    """Forward passes with some nodes of one layer replaced; interventions stacked along the
    batch (``batch`` images per pass), counted."""

    def __init__(self, model, x, target, batch) -> None:
        self.model, self.x, self.target = model, x, target
        self.step = max(1, batch // len(x))  # interventions per pass
        self.passes = self.images = 0

    def changed(self, layer, masks, swap, watched, size) -> dict[str, np.ndarray]:
        """For each row of ``masks`` (R, C): the class score (R, n) with those units of
        ``layer`` replaced by ``swap``, and each watched layer's contributions (R, n, C)."""
        outs: dict[str, list] = {"score": [], **{w: [] for w in watched}}
        for start in range(0, len(masks), self.step):
            part = self._pass(layer, masks[start:start + self.step], swap, watched, size)
            for k, v in part.items():
                outs[k].append(v)
        return {k: np.concatenate(v) for k, v in outs.items()}

    def _pass(self, layer, masks, swap, watched, size) -> dict[str, np.ndarray]:
        n, reps = len(self.x), len(masks)
        select = masks.to(swap.device)[:, None, :, None, None]

        def edit(a: torch.Tensor) -> torch.Tensor:
            lo = positions_for(self.model, a, size, layer)
            grid = lo.to_grid(a).reshape(reps, n, *swap.shape[1:])
            new = torch.where(select, swap[None].to(grid.dtype), grid)
            return lo.from_grid(new.reshape(reps * n, *swap.shape[1:]), a)

        refs = [LayerRef.parse(w) for w in watched]
        with capture(self.model, [LayerRef.parse(layer)], edit=edit), \
                capture(self.model, refs) as rec, torch.no_grad():
            scores = self.model(self.x.repeat(reps, *[1] * (self.x.dim() - 1)))
            out = {"score": scores[:, self.target].float().reshape(reps, n).cpu().numpy()}
            for ref, (w, g) in zip(refs, watched.items(), strict=True):
                a = rec[ref]
                grid = positions_for(self.model, a, size, w).to_grid(a).float()
                grid = grid.reshape(reps, n, *grid.shape[1:])
                out[w] = (grid * g[None]).sum((3, 4)).cpu().numpy()
        self.passes += 1
        self.images += reps * n
        return out

    def all_changed(self, circuit: Circuit, swap, size) -> float:
        """The mean class score with every layer's nodes outside the graph replaced at once."""
        def editor(name):
            keep = torch.zeros(swap[name].shape[1], dtype=torch.bool)
            keep[torch.as_tensor(circuit.nodes[name], dtype=torch.long)] = True
            select = (~keep).to(swap[name].device)[None, :, None, None]

            def edit(a: torch.Tensor) -> torch.Tensor:
                lo = positions_for(self.model, a, size, name)
                grid = lo.to_grid(a)
                return lo.from_grid(torch.where(select, swap[name].to(grid.dtype), grid), a)
            return edit

        with ExitStack() as stack, torch.no_grad():
            for name in circuit.layers:
                stack.enter_context(capture(self.model, [LayerRef.parse(name)],
                                            edit=editor(name)))
            score = float(self.model(self.x)[:, self.target].float().mean())
        self.passes += 1
        self.images += len(self.x)
        return score
