"""LRP maps: one forward and one modified backward pass over the relevance graph.

The relevance entering the network is each image's target score, split over the outputs
as output x d score / d output (for a class: its logit, all other outputs zero), so the
input relevance sums to the score up to what biases and stabilizers absorb; the result
reports both per image (``extras['relevance']`` and ``extras['score']``). The user's model
is never touched: the graph is a canonized copy, cached per model until its weights change.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.capture import capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.fastpath import fingerprint
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps
from netscope.vision.core.targets import TargetLike, detached, reading_key, resolve
from netscope.vision.methods.relevance.composites import Composite
from netscope.vision.methods.relevance.graph import add_probes, relevance_graph
from netscope.vision.methods.relevance.rules import Rule

_GRAPHS: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


@checked_images
def lrp(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
        composite: str = "epsilon-plus", epsilon: float = 1e-6, gamma: float = 0.25,
        stabilizer: float = 1e-6, attention: str = "ah", low=None, high=None,
        rules: dict[str, Rule] | None = None, normalize: str = "max",
        through: dict[str, Sequence[int]] | None = None,
        units: str | Sequence[str] | None = None,
        weigh: dict[str, torch.Tensor] | None = None) -> Heatmaps:
    """LRP relevance of each image's target: ``attributions`` the signed relevance per input
    value (N, C, H, W), ``maps`` its sum over channels, positive part, scaled by
    ``normalize`` (what faithfulness metrics rank); ``composite`` picks the rules (see
    ``composites``), ``rules`` names a rule per layer; ``low``/``high`` are the input's
    bounds for z-box (default: each channel's extremes in this batch). ``attention``:
    how relevance passes a transformer's attention, "ah" (the weights held constant, Ali
    et al. 2022) or "attnlrp" (Achtibat et al. 2024: through the queries and keys too).

    Concept relevance (Achtibat et al. 2023): ``through={"layer": [k, ...]}`` lets only
    those channels of the layer pass relevance on, so the map shows where units k
    contribute to the target on this image. ``units="layer"`` reports how much of the
    target's relevance passes through each unit of that layer: ``extras['units']`` (N, C),
    the relevance at its output summed over positions; with several layers
    (``units=[...]``), ``extras['unit_relevance']`` holds each one's relevance at its output
    as the layer gives it (for one layer too). ``weigh={"layer": w}`` multiplies the
    relevance reaching each value of the layer's output by ``w`` (its shape): a direction's
    share of each value, so the map shows where a dictionary feature contributes."""
    if composite == "epsilon-gamma-box" and (low is None or high is None):
        low = x.amin(dim=(0, 2, 3), keepdim=True)[0] if low is None else low
        high = x.amax(dim=(0, 2, 3), keepdim=True)[0] if high is None else high
    unknown = [k for k in (rules or {}) if k not in dict(model.named_modules())]
    if unknown:
        from difflib import get_close_matches

        names = [n for n, _ in model.named_modules() if n]
        near = get_close_matches(unknown[0], names, 3)
        raise NetscopeError(f"rules name layer {unknown[0]!r}, which the model does not have"
                            + (f"; did you mean {', '.join(map(repr, near))}?" if near else
                               f"; its layers include {', '.join(names[:8])}."))
    spec = Composite(composite, epsilon, gamma, stabilizer, low, high, dict(rules or {}),
                     attention)
    watch = {name: tuple(int(c) for c in chans) for name, chans in (through or {}).items()}
    recorded = [] if units is None else [units] if isinstance(units, str) else list(units)
    for name in [*recorded, *(weigh or {})]:
        watch.setdefault(name, None)
    graph, probes = _graph(model, spec, watch, x[:1].detach())
    for name, w in (weigh or {}).items():
        probes[name].weight = w.detach()
    try:
        return _propagate(model, x, targets, graph, probes, normalize, recorded, units)
    finally:
        for name in weigh or {}:
            probes[name].weight = None


def _propagate(model, x, targets, graph, probes, normalize, recorded, units) -> Heatmaps:
    """The forward and modified backward pass (see ``lrp``)."""
    with capture(model, []):  # the user's model is only read: its flags stay as they are
        xi = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            out = graph(xi)
            t = resolve(detached(out), targets)
            _same_scores(model, x, out, t)
            (weight,) = torch.autograd.grad(t.score(out).sum(), out, retain_graph=True)
            start = weight * out.detach()
            (R,) = torch.autograd.grad(out, xi, start)
    signed = R.sum(1) if R.dim() > 2 else R  # images: over colours; else per feature
    heat = Heatmaps(normalize_maps(signed.clamp(min=0), normalize), detached(out), t, t.labels,
                    "input", "lrp", normalize, attributions=R.detach(),
                    extras={"relevance": R.flatten(1).sum(1).detach(),
                            "score": start.flatten(1).sum(1)}, signed_evidence=True,
                    reduction="sum-relu" if R.dim() == 4 else None)
    if recorded:
        heat.extras["unit_relevance"] = {name: probes[name].seen for name in recorded}
    if isinstance(units, str):
        seen = probes[units].seen
        heat.extras["units"] = seen.flatten(2).sum(2) if seen.dim() > 2 else seen
    return heat


def _same_scores(model: nn.Module, x: torch.Tensor, out, t) -> None:
    """LRP explains the traced copy of the model: its target scores must be the model's on
    these images (one extra forward pass), or the map would explain another function."""
    with torch.no_grad():
        ref = t.score(model(x.detach())).float()
    got = t.score(detached(out)).float()
    scale = float(ref.abs().max()) + 1e-6
    if not torch.allclose(got, ref, rtol=1e-4, atol=1e-5 * scale):
        worst = int((got - ref).abs().argmax())
        raise NetscopeError(
            f"LRP's traced copy of the model gives the target score {float(got[worst]):.6g} "
            f"for image {worst} where the model gives {float(ref[worst]):.6g}: some operation "
            f"of the model's forward is not reproduced (an in-place operation such as "
            f"`h += ...` or `.mul_(...)`?); write it out of place, or use another method.")


def _graph(model: nn.Module, spec: Composite, watch: dict, example: torch.Tensor):
    """The relevance graph of ``model`` under ``spec`` with probes at the ``watch``ed
    layers, reused while the weights are the same (building it traces and copies)."""
    key = (repr(spec), tuple(sorted(watch.items())), fingerprint(model),
           repr(reading_key(model)))  # the part of the output the model is read for
    try:
        known = _GRAPHS.setdefault(model, {})
    except TypeError:
        known = {}
    if key not in known:
        known.clear()
        graph = relevance_graph(model, spec, example)
        known[key] = graph, add_probes(graph, watch)
    return known[key]
