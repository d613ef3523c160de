"""How much each unit of some layers matters to the image's predicted class: the relevance
that reaches the unit (summed over its positions), as a share of the image's relevance at
that layer, and the position where the unit's relevance is largest. The atlas ranks images
by it (relevance maximization, Achtibat et al. 2023: the images a unit is *used* for, not
only those it fires on), as zennit-crp's ``FeatureVisualization`` does with its defaults
(``max_target="sum"``, ``abs_norm=True``).

``"lrp"``: LRP relevance (epsilon-plus composite) at the layers' outputs, one modified
backward pass for every layer at once. ``"gradient"``: activation times the class score's
gradient, which works for any model (the first-order share of the score). Dictionary
features (a tap's layer, ``features_LAYER``) take their part of the relevance of the layer
they read (``FeatureTap.feature_relevance``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.concepts.tap import stabilized
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.token_grid import Layout, layout_for
from netscope.vision.units import RELEVANCE


def unit_relevance(model: nn.Module, x: torch.Tensor, refs: dict[str, LayerRef],
                   layouts: dict[str, Layout], how: str
                   ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per layer: (share (n, units), grid row, grid column of the largest relevance), for
    each image's top-1 class."""
    if how not in RELEVANCE:
        raise NetscopeError(f"relevance must be one of {', '.join(RELEVANCE)}, got {how!r}.")
    modules = dict(model.named_modules())
    taps = {name: modules[ref.name] for name, ref in refs.items()
            if hasattr(modules.get(ref.name), "feature_relevance")}
    read = {name: ref for name, ref in refs.items() if name not in taps}
    for tap in taps.values():  # a tap's relevance comes from the layer it reads
        read.setdefault(tap.layer, LayerRef.parse(tap.layer))
    maps, acts, weights = (_lrp_maps if how == "lrp" else _gradient_maps)(model, x, read)
    size = tuple(x.shape[-2:])
    for name, tap in taps.items():
        lo = layout_for(model, acts[tap.layer], size, tap.layer)
        maps[name] = tap.feature_relevance(lo.to_grid(acts[tap.layer]).float(),
                                           lo.to_grid(weights[tap.layer]).float())
    out = {}
    for name in refs:
        m = maps[name]
        grid = m if name in taps else layouts[name].to_grid(m).float()  # (n, units, h, w)
        flat = grid.flatten(2)
        total = flat.sum(2)
        share = total / (total.abs().sum(1, keepdim=True) + 1e-10)
        pos = flat.argmax(2).cpu().numpy()
        w = grid.shape[-1]
        out[name] = (share.cpu().numpy(), pos // w, pos % w)
    return out


def _gradient_maps(model, x, refs) -> tuple[dict, dict, dict]:
    """(activation x gradient, activation, gradient) per layer, for each image's top-1
    class."""
    with capture(model, list(refs.values())) as rec, torch.enable_grad():
        scores = model(x.detach().requires_grad_(True))
        acts = [rec[r] for r in refs.values()]
        top = scores.argmax(-1)
        grads = torch.autograd.grad(scores.gather(1, top[:, None]).sum(), acts,
                                    allow_unused=True)
    grads = [torch.zeros_like(a) if g is None else g for a, g in zip(acts, grads, strict=True)]
    return ({name: a.detach() * g for name, a, g in zip(refs, acts, grads, strict=True)},
            {name: a.detach() for name, a in zip(refs, acts, strict=True)},
            dict(zip(refs, grads, strict=True)))


def _lrp_maps(model, x, refs) -> tuple[dict, dict, dict]:
    """(LRP relevance at the output, activation, relevance per unit of activation) per
    layer, for each image's top-1 class."""
    from netscope.vision.methods.relevance.propagate import lrp

    for ref in refs.values():
        if ref.port != "output" or ref.call != -1:
            raise NetscopeError(f"LRP relevance is read at a layer's output; {ref} is not one "
                                f"(use --relevance gradient, or name the module).")
    heat = lrp(model, x, None, units=[ref.name for ref in refs.values()])
    seen = heat.extras["unit_relevance"]
    with capture(model, list(refs.values())) as rec, torch.no_grad():
        model(x)
    maps = {name: seen[ref.name].detach() for name, ref in refs.items()}
    acts = {name: rec[ref] for name, ref in refs.items()}
    return maps, acts, {name: maps[name] / stabilized(acts[name]) for name in refs}
