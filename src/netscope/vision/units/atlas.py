"""The unit atlas: the dataset pass's merged state turned into what a reader asks of every
unit (strongest examples with the patch they see, statistics, alike units, circuits,
classes), as tables and arrays that ``render.atlas_site`` draws."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from netscope.vision.core.token_grid import Layout
from netscope.vision.models.images import load_image
from netscope.vision.models.zoo import LoadedModel
from netscope.vision.units import circuits as circ
from netscope.vision.units import similarity as sim
from netscope.vision.units.receptive_field import Field, receptive_fields
from netscope.vision.units.store import PassState
from netscope.vision.units.streaming import EDGES, UnitState


def layer_slug(layer: str) -> str:
    """A folder name for a layer (site pages, picture files): letters, digits, '.', '_'
    and '-' kept, others '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", layer) or "_"


@dataclass
class LayerAtlas:
    name: str
    state: UnitState
    field: Field
    grid: tuple[int, int]
    correlation: np.ndarray
    order: np.ndarray  # cluster order of the units
    weights: tuple[str, np.ndarray] | None = None  # (conv name, weight cosine)
    inputs: tuple[str, np.ndarray] | None = None  # (earlier layer, later x earlier terms)
    classes: np.ndarray | None = None  # (units, classes) mean logit contribution
    classes_how: str = ("Mean contribution to the class logit over the dataset (classifier "
                        "weight times mean pooled activation).")
    pictures: dict[str, np.ndarray] = field(default_factory=dict)  # "main"/"diverse" images
    # dictionary features: (the layer they read, (K, C) atoms, (K,) mean codes, how known)
    atoms: tuple[str, np.ndarray, np.ndarray, str] | None = None

    @property
    def units(self) -> int:
        return self.state.units

    def statistics(self) -> dict[str, np.ndarray]:
        return self.state.statistics()

    def similar(self, unit: int, n: int = 5) -> list[tuple[int, float, float | None]]:
        """The most correlated units: (unit, correlation, weight cosine or None)."""
        cos = self.weights[1] if self.weights is not None else None
        return [(j, c, None if cos is None else float(cos[unit, j]))
                for j, c in sim.most_similar(self.correlation, unit, n)]

    def histogram(self, unit: int) -> tuple[np.ndarray, np.ndarray]:
        """(edges, counts) of the unit's per-image maximum, trimmed to the used bins."""
        counts = self.state.arrays["hist"][unit]
        used = np.nonzero(counts)[0]
        if not len(used):
            return EDGES[:2], np.zeros(1, np.int64)
        lo, hi = used[0], used[-1] + 1
        return EDGES[lo:hi + 1], counts[lo:hi]


@dataclass
class Atlas:
    model: str
    size: int
    files: list[str]
    unreadable: dict[int, str]
    layers: dict[str, LayerAtlas]
    spectrum: np.ndarray | None  # mean amplitude spectrum of the images (3, S, S//2 + 1)
    relevance_how: str | None = None  # how the pass measured relevance ("gradient", "lrp")

    def examples(self, ranking: str = "activation") -> pd.DataFrame:
        """One row per (layer, unit, rank): the image, its activation (with ``ranking=
        "relevance"``: the unit's share of the image's class relevance, for the layers the
        pass measured it on), the position (maximum or most relevant) in input pixels
        (y, x) and on the grid, and the field's box there."""
        kind, value = ("top", "activation") if ranking == "activation" else ("rel", "relevance")
        rows = []
        for name, la in self.layers.items():
            a = la.state.arrays
            if f"{kind}_value" not in a:
                continue
            for u in range(la.units):
                for r in range(la.state.k):
                    i = int(a[f"{kind}_image"][u, r])
                    if i < 0:
                        continue
                    gy, gx = int(a[f"{kind}_y"][u, r]), int(a[f"{kind}_x"][u, r])
                    cy, cx = la.field.centre(gy, gx)
                    top, left, bottom, right = la.field.box(gy, gx)
                    rows.append({"layer": name, "unit": u, "rank": r, "file": self.files[i],
                                 value: float(a[f"{kind}_value"][u, r]),
                                 "y": int(np.floor(cy + 0.5)), "x": int(np.floor(cx + 0.5)),
                                 "grid_y": gy, "grid_x": gx, "top": top, "left": left,
                                 "bottom": bottom, "right": right,
                                 "padded": bool(top < 0 or left < 0 or bottom > self.size
                                                or right > self.size)})
        return pd.DataFrame(rows, columns=["layer", "unit", "rank", "file", value, "y",
                                           "x", "grid_y", "grid_x", "top", "left", "bottom",
                                           "right", "padded"])

    @property
    def relevance(self) -> bool:
        """Whether the pass ranked images by relevance too."""
        return any(la.state.has_relevance for la in self.layers.values())

    def statistics(self) -> pd.DataFrame:
        """One row per (layer, unit): statistics over the dataset, the cluster position,
        the most similar unit, and how the receptive field was found."""
        frames = []
        for name, la in self.layers.items():
            s = la.statistics()
            position = np.empty(la.units, np.int64)
            position[la.order] = np.arange(la.units)
            frames.append(pd.DataFrame({
                "layer": name, "unit": np.arange(la.units), "images": la.state.n, **s,
                "cluster_position": position,
                "most_similar": [la.similar(u, 1)[0][0] if la.units > 1 else -1
                                 for u in range(la.units)],
                "field": la.field.method, "field_height": la.field.size[0],
                "field_width": la.field.size[1]}))
        return pd.concat(frames, ignore_index=True)

    def file_table(self) -> pd.DataFrame:
        return pd.DataFrame({"file": self.files,
                             "status": ["unreadable" if i in self.unreadable else "ok"
                                        for i in range(len(self.files))],
                             "error": [self.unreadable.get(i, "") for i in
                                       range(len(self.files))]})

    def _repr_html_(self) -> str:
        from netscope.render.atlas_site import atlas_summary_html

        return atlas_summary_html(self)


def build_atlas(lm: LoadedModel, root: str | Path, files: list[str], state: PassState,
                layouts: dict[str, Layout], progress: Callable[[str], None] | None = None,
                circuits: bool = True) -> Atlas:
    """Everything but the pictures from the merged pass state (see the module docstring);
    the earlier of two consecutive chosen layers (in the order they run) feeds the
    circuits of the later one."""
    say = progress or (lambda message: None)
    names = list(state.layers)
    say(f"atlas: receptive fields of {', '.join(names)}")
    fields = receptive_fields(lm.model, names, lm.preprocess.size)
    load = _loader(lm, root, files)
    layers = {}
    for name in names:
        st = state.layers[name]
        corr = st.correlation()
        grid = _grid(lm, name, layouts[name])
        w = sim.filter_weights(lm.model, name, st.units)
        layers[name] = LayerAtlas(name, st, fields[name], grid, corr, sim.cluster_order(corr),
                                  None if w is None else (w[0], sim.weight_cosine(w[1])))
        head = circ.pooled_head(lm.model, name, layouts[name], _noise(lm))
        if head is not None:
            layers[name].classes = circ.class_support(head[0], st.statistics()["mean_pooled"])
        elif _is_feature_layer(lm.model, name):
            say(f"atlas: classes the features of {name} support")
            from netscope.vision.concepts.tap import feature_classes

            layers[name].classes = feature_classes(lm.model, load, name,
                                                   st.arrays["top_image"], _n_classes(lm),
                                                   lm.preprocess.size)
            layers[name].classes_how = (
                "The feature's part of the layer (its code times its atom) times the "
                "gradient of the predicted class's logit, summed over positions, on the "
                "feature's strongest images; summed per class and divided by the number of "
                "those images.")
            layers[name].atoms = _atoms(lm.model, name, st)
    if circuits:
        ordered = run_order(lm, names)
        for earlier, later in zip(ordered, ordered[1:], strict=False):
            say(f"atlas: circuits {earlier} -> {later}")
            terms = circ.unit_circuits(lm.model, load, earlier, later, layouts,
                                       state.layers[later], say)
            layers[later].inputs = (earlier, terms)
    spectrum = state.spectrum / state.spectrum_count if state.spectrum_count else None
    return Atlas(lm.name, lm.preprocess.size, files, state.unreadable, layers, spectrum)


def _atoms(model, name: str, st: UnitState) -> tuple[str, np.ndarray, np.ndarray, str]:
    """A feature layer's atoms over the units it reads and the features' mean codes (saved
    with the dictionary; else the mean of their non-negative responses over this dataset)."""
    tap = dict(model.named_modules())[name]
    atoms = tap.dictionary.atoms().detach().cpu().numpy()
    if tap.mean_code is not None:
        return tap.layer, atoms, np.asarray(tap.mean_code, float), "the dictionary's samples"
    return (tap.layer, atoms, np.maximum(st.statistics()["mean_pooled"], 0),
            "mean response on this dataset (the dictionary was saved without its mean codes)")


def _is_feature_layer(model, name: str) -> bool:
    from netscope.vision.concepts.tap import FeatureTap

    return isinstance(dict(model.named_modules()).get(name), FeatureTap)


def _n_classes(lm: LoadedModel) -> int:
    with torch.no_grad():
        from netscope.vision.core.targets import class_output

        return int(class_output(lm.model(_noise(lm))).shape[-1])


def run_order(lm: LoadedModel, names: list[str]) -> list[str]:
    """The chosen layers in the order the forward pass reaches them."""
    from netscope.vision.core.capture import LayerRef, capture, hooks

    seen: list[str] = []
    modules = dict(lm.model.named_modules())
    by_module: dict[str, list[str]] = {}
    for n in names:
        by_module.setdefault(LayerRef.parse(n).name, []).append(n)

    def mark(module_name):
        def hook(*_):
            for n in by_module[module_name]:
                if n not in seen:
                    seen.append(n)
        return hook

    # first among each module's hooks: a hook that runs another module (a dictionary's
    # feature tap) must see the module marked before the module it runs
    with capture(lm.model, []), hooks(((modules[m], mark(m)) for m in by_module),
                                      prepend=True), torch.no_grad():
        lm.model(_noise(lm))
    return seen + [n for n in names if n not in seen]


def _noise(lm: LoadedModel) -> torch.Tensor:
    size = lm.preprocess.size
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    return x.to(torch.device(lm.preprocess.device), getattr(torch, lm.preprocess.dtype))


def _grid(lm: LoadedModel, name: str, layout: Layout) -> tuple[int, int]:
    from netscope.vision.core.capture import LayerRef, capture

    ref = LayerRef.parse(name)
    with capture(lm.model, [ref]) as rec, torch.no_grad():
        lm.model(_noise(lm))
        g = layout.to_grid(rec[ref])
    return int(g.shape[-2]), int(g.shape[-1])


def _loader(lm: LoadedModel, root: str | Path, files: list[str]):
    def load(indices: list[int]) -> torch.Tensor:
        return torch.cat([lm.preprocess.tensor(load_image(Path(root) / files[i]))
                          for i in indices])
    return load
