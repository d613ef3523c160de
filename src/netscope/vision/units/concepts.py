"""One prediction explained by its units: which units of a layer carry the class score on
this image, and where each of them fires and counts.

``gradient`` (default): the channel terms of the score's first-order expansion at the
layer, activation times gradient summed over positions (their sum is the score's
first-order part); each unit's map is that product per position, on the layer's grid.
``lrp``: Concept Relevance Propagation (Achtibat et al. 2023): the class relevance that
reaches each unit ranks them, and each unit's map is the input relevance conditioned on
that unit alone (one modified backward pass per unit shown).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.targets import TargetLike, resolve
from netscope.vision.core.token_grid import layout_for
from netscope.vision.models.classes import class_label
from netscope.vision.units import RELEVANCE


@dataclass
class Concepts:
    """The units of ``layer`` that carry the target's score on one image."""

    image: np.ndarray  # (H, W, 3) in [0, 1], what the model saw
    layer: str
    target: int
    class_name: str
    score: float
    terms: np.ndarray  # (units,) each unit's share (gradient terms or relevance)
    units: list[int]  # the strongest, largest term first
    maps: np.ndarray  # (len(units), H, W) signed, each unit's own map
    relevance: str
    atlas: dict = field(default_factory=dict)  # unit -> {"picture": array, "patches": [...]}

    def table(self):
        import pandas as pd

        total = float(np.abs(self.terms).sum()) or 1.0
        return pd.DataFrame({"unit": self.units, "term": self.terms[self.units],
                             "share": self.terms[self.units] / total})

    def _repr_png_(self) -> bytes:
        from netscope.render.concepts import concepts_png

        return concepts_png(self)

    def _repr_html_(self) -> str:
        from netscope.render.concepts import concepts_html

        return concepts_html(self)


def concepts(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
             layer: str | None = None, top: int = 6, relevance: str = "gradient",
             class_names=None, image: np.ndarray | None = None) -> Concepts:
    """The ``top`` units of ``layer`` (default: the one heatmaps use) behind the target's
    score on the single image ``x`` (see the module docstring)."""
    from netscope.vision.core.layer_choice import default_layer

    if relevance not in RELEVANCE:
        raise NetscopeError(f"relevance must be one of {', '.join(RELEVANCE)}, got "
                            f"{relevance!r}.")
    if x.shape[0] != 1:
        raise NetscopeError(f"concepts explain one image at a time; got a batch of "
                            f"{x.shape[0]}.")
    if top < 1:
        raise NetscopeError(f"top must be at least 1, got {top}.")
    ref = LayerRef.parse(layer) if layer else default_layer(model, x)
    size = tuple(x.shape[-2:])
    with capture(model, [ref], cut=True) as rec, torch.enable_grad():
        out = model(x)
        t = resolve(out.detach(), targets)
        score = t.score(out).sum()
        a = rec[ref]
        (g,) = torch.autograd.grad(score, a)
    layout = layout_for(model, a, size, str(ref))
    product = (layout.to_grid(a.detach()) * layout.to_grid(g)).detach()[0].float()  # (C,h,w)
    terms = product.sum((1, 2)).cpu().numpy()
    if relevance == "lrp":
        terms, maps_for = _crp(model, x, t, ref)
    order = [int(u) for u in np.lexsort((np.arange(len(terms)), -terms))[:top]]
    if relevance == "lrp":
        maps = maps_for(order)
    else:
        maps = F.interpolate(product[order][None], size=size, mode="bilinear",
                             align_corners=False)[0].cpu().numpy()
    k = int(t.labels[0])
    return Concepts(image if image is not None else np.zeros((*size, 3), np.float32),
                    str(ref), k, class_label(class_names, k), float(score.detach()), terms,
                    order, maps, relevance)


def _producer(model, x, ref) -> LayerRef:
    """The module whose output a layer's input is (the default layer of a pooled CNN is the
    pooling's input), found by running the model once and matching the tensor itself."""
    seen: list[tuple[str, torch.Tensor]] = []
    wanted: list[torch.Tensor] = []
    modules = dict(model.named_modules())
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: seen.append((name, o)))
             for name, m in modules.items() if name]
    hooks.append(modules[ref.name].register_forward_pre_hook(
        lambda mod, i: wanted.append(i[0])))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    target = wanted[0] if wanted else None
    for name, out in reversed(seen):
        if isinstance(out, torch.Tensor) and target is not None and out is target:
            return LayerRef.parse(name)
    raise NetscopeError(f"concept relevance reads a layer's output; {ref} is an input and no "
                        f"module's output is that tensor: name a layer's output (--layer).")


def _crp(model, x, t, ref):
    from netscope.vision.methods.relevance.propagate import lrp

    if hasattr(dict(model.named_modules()).get(ref.name), "feature_relevance"):
        from netscope.vision.concepts.tap import feature_crp  # dictionary features

        return feature_crp(model, x, t.labels.tolist(), ref.name)
    if ref.port != "output":
        ref = _producer(model, x, ref)  # the module whose output that input is
    labels = t.labels.tolist()
    whole = lrp(model, x, labels, units=ref.name)
    terms = whole.extras["units"][0].detach().float().cpu().numpy()

    def maps_for(units: list[int]) -> np.ndarray:
        return np.stack([lrp(model, x, labels, through={ref.name: [u]}).attributions[0]
                         .sum(0).detach().float().cpu().numpy() for u in units])
    return terms, maps_for


def attach_atlas(result: Concepts, atlas_dir: str | Path, model_name: str, size: int,
                 patches: int = 3) -> Concepts:
    """Each shown unit's feature visualization and strongest dataset patches from an atlas
    folder; an atlas of another model, input size or without this layer is refused."""
    from netscope.vision.units.atlas import layer_slug

    atlas_dir = Path(atlas_dir)
    run = atlas_dir / "atlas-run.json"
    if not run.is_file():
        raise NetscopeError(f"--atlas {atlas_dir}: no atlas-run.json there; give the folder "
                            f"that `netscope vision atlas` wrote.")
    made = json.loads(run.read_text())
    if made.get("model") != model_name or made.get("size") != size:
        raise NetscopeError(f"--atlas {atlas_dir} was built for model {made.get('model')!r} "
                            f"at {made.get('size')} px, not {model_name!r} at {size} px; use "
                            f"an atlas of the same model.")
    if result.layer not in made.get("layers", []):
        raise NetscopeError(f"--atlas {atlas_dir} has layers {', '.join(made['layers'])}, not "
                            f"{result.layer}; pass --layer with one of them or build an atlas "
                            f"of {result.layer}.")
    slug = layer_slug(result.layer)
    pictures = {}
    path = atlas_dir / "pictures" / f"{slug}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            main = z["main"]
            pictures = {u: main[u].astype(np.float32).transpose(1, 2, 0) for u in result.units}
    from PIL import Image

    for u in result.units:
        found = sorted((atlas_dir / slug / "img").glob(f"u{u}-p*.jpg"),
                       key=lambda p: int(p.stem.rsplit("-p", 1)[1]))[:patches]
        result.atlas[u] = {"picture": pictures.get(u), "patches": [
            np.asarray(Image.open(p).convert("RGB"), np.float32) / 255 for p in found],
            "page": f"{atlas_dir / slug / f'{u}.html'}"}
    return result
