"""Dictionary features as a layer of the model, so everything that reads a layer (the atlas's
pass, strongest images and patches, statistics, similarity, circuits, feature visualization
by gradient ascent) reads features too: a hook on the dictionary's layer computes every
position's feature responses (an SAE's encoder output before its top-k choice, so a feature
that another one outranks still has a value and a gradient; NMF's codes), differentiably,
and passes them through a registered identity module (the tap) whose output is a (batch,
K, h, w) grid. The network's own computation is left as it was. With ``splice`` the codes
themselves replace the layer's activations (see ``attach_features``).
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.concepts.learn import Learned
from netscope.vision.core.layers import find_layer
from netscope.vision.core.token_grid import layout_for


class FeatureTap(nn.Module):
    """Holds the dictionary; its output is the codes the hook hands it."""

    def __init__(self, learned: Learned, layer: str,
                 mean_code: np.ndarray | None = None) -> None:
        super().__init__()
        self.dictionary = learned.model.eval()
        self.scale = learned.scale
        self.layer = layer
        self.mean_code = mean_code  # (K,) over the dictionary's samples, when saved with it

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return codes

    def feature_relevance(self, acts: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Each feature's share of a quantity spread over the layer's channels: with the
        layer's activations ``acts`` and a per-value ``weight`` (both (n, C, h, w) grids),
        sum_c code_k atom_kc scale weight_c, (n, K, h, w). With the class gradient as the
        weight it is the feature's first-order part of the score; with LRP relevance
        divided by the activations, the z-rule through the rebuilt activations (codes times
        atoms; the reconstruction error keeps the rest)."""
        n, _, h, w = acts.shape
        with torch.no_grad():
            out = self.codes(acts) * (_rows(weight) @ self.dictionary.atoms().T) * self.scale
        return out.reshape(n, h * w, -1).transpose(1, 2).reshape(n, -1, h, w)

    def codes(self, acts: torch.Tensor) -> torch.Tensor:
        """The codes of every position of an (n, C, h, w) grid of the layer: (n h w, K)."""
        return self.dictionary.encode(_rows(acts) / self.scale)


def _rows(grid: torch.Tensor) -> torch.Tensor:
    """An (n, C, h, w) grid as one row per position: (n h w, C)."""
    return grid.flatten(2).transpose(1, 2).reshape(-1, grid.shape[1])


def tap_name(layer: str) -> str:
    """The features' layer name: ``features_`` and the layer's name with every character
    a module name cannot hold replaced by '_' (``_blocks.15`` -> ``features__blocks_15``)."""
    return "features_" + re.sub(r"[^A-Za-z0-9_]", "_", layer)


def attach_features(model: nn.Module, layer: str, learned: Learned, size: int,
                    splice: bool = False, mean_code: np.ndarray | None = None) -> str:
    """Register the tap of ``learned`` (a dictionary of ``layer``) on ``model`` and return
    its layer name; the hook stays for the model's life (a command's run). ``splice``: the
    network goes on from the features, its activations rebuilt as the codes (as the tap
    returns them, so an edit of the tap reaches the class) times the atoms plus the
    dictionary's reconstruction error held fixed: the same numbers, but gradients reach
    the features (the replacement model of circuit work). ``mean_code``: the features'
    mean codes (saved with the dictionary), for which units take part in which feature."""
    name = tap_name(layer)
    if hasattr(model, name):
        raise NetscopeError(f"the model already has a layer {name!r}: the features of "
                            f"{layer} are attached once.")
    module = find_layer(model, layer)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    tap = FeatureTap(learned, layer, mean_code).to(device)
    probe = torch.zeros(1, 3, size, size, device=device)
    out = {}
    handle = module.register_forward_hook(lambda m, i, o: out.setdefault("o", o))
    try:
        with torch.no_grad():
            model(probe)
    finally:
        handle.remove()
    layout = layout_for(model, out["o"], (size, size), layer)
    channels = int(layout.to_grid(out["o"]).shape[1])
    atoms = learned.model.atoms()
    if atoms.shape[1] != channels:
        raise NetscopeError(f"the dictionary has {atoms.shape[1]} channels but layer {layer} "
                            f"has {channels}: it was learned on another layer or model.")

    def hook(_module, _inputs, output):
        grid = layout.to_grid(output).float()
        n, c, h, w = grid.shape
        samples = _rows(grid) / tap.scale
        if not splice:  # the atlas: each feature's response, before the sparsity choice
            shown = tap.dictionary.responses(samples)
            k = shown.shape[1]
            tap(shown.reshape(n, h * w, k).transpose(1, 2).reshape(n, k, h, w))
            return None
        codes = tap.dictionary.encode(samples)  # differentiable: circuits
        k = codes.shape[1]
        seen = tap(codes.reshape(n, h * w, k).transpose(1, 2).reshape(n, k, h, w))
        rebuilt = (seen.flatten(2).transpose(1, 2) @ tap.dictionary.atoms()) * tap.scale
        rebuilt = rebuilt.transpose(1, 2).reshape(n, c, h, w)
        error = (grid - (codes @ tap.dictionary.atoms()).reshape(n, h * w, c).transpose(1, 2)
                 .reshape(n, c, h, w) * tap.scale).detach()
        return layout.from_grid((rebuilt + error).to(output.dtype), output)

    model.add_module(name, tap)
    module.register_forward_hook(hook)
    return name


def feature_crp(model: nn.Module, x: torch.Tensor, labels: list[int], name: str):
    """Concept relevance for the features of tap ``name`` on images ``x``: (terms (K,) of
    image 0, maps_for(features) -> (len, H, W) maps of image 0). LRP relevance at the layer
    the features read is split over them by the z-rule (each value's share: code times atom
    over the activation; the reconstruction error keeps the rest), and a feature's map is
    the input relevance when only its share passes down (``lrp(weigh=...)``): the features'
    maps and the error's add up to the whole map."""
    from netscope.vision.core.capture import LayerRef, capture
    from netscope.vision.methods.relevance.propagate import lrp

    tap = dict(model.named_modules())[name]
    ref = LayerRef.parse(tap.layer)
    with capture(model, [ref]) as rec, torch.no_grad():
        model(x)
    raw = rec[ref]
    layout = layout_for(model, raw, tuple(x.shape[-2:]), tap.layer)
    a = layout.to_grid(raw).float()
    whole = lrp(model, x, labels, units=tap.layer)
    R = layout.to_grid(whole.extras["unit_relevance"][tap.layer]).float()
    terms = tap.feature_relevance(a, R / stabilized(a)).sum((2, 3))[0].cpu().numpy()

    def maps_for(features: list[int]) -> np.ndarray:
        maps = []
        for k in features:
            weight = layout.from_grid(feature_share(tap, a, k), raw)
            heat = lrp(model, x, labels, weigh={tap.layer: weight})
            maps.append(heat.attributions[0].sum(0).detach().float().cpu().numpy())
        return np.stack(maps)
    return terms, maps_for


def feature_share(tap: FeatureTap, acts: torch.Tensor, k: int) -> torch.Tensor:
    """Feature k's share of each value of the layer's activations (n, C, h, w): its code
    times its atom times the scale, over the (stabilized) activation."""
    n, c, h, w = acts.shape
    with torch.no_grad():
        codes = tap.codes(acts)[:, k]  # (n h w,)
        part = codes[:, None] * tap.dictionary.atoms()[k][None] * tap.scale  # (n h w, C)
        part = part.reshape(n, h * w, c).transpose(1, 2).reshape(n, c, h, w)
    return part / stabilized(acts)


def stabilized(a: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``a`` pushed away from zero by ``eps`` (with its sign), for the z-rule's division."""
    return a + eps * torch.where(a >= 0, 1.0, -1.0)


def feature_classes(model: nn.Module, load, name: str, top_image: np.ndarray,
                    n_classes: int, size: int) -> np.ndarray:
    """(K, classes) for the features of tap ``name``: on each feature's strongest images
    (``top_image``, (K, top) file indices, -1 empty), the first-order contribution of the
    feature's part of the layer's activations (its code times its atom) to the predicted
    class's logit, summed per class and divided by the feature's number of such images:
    the classes it supports where it fires most."""
    from netscope.vision.core.capture import LayerRef, capture
    from netscope.vision.core.targets import class_output

    tap = dict(model.named_modules())[name]
    ref = LayerRef.parse(tap.layer)
    atoms = tap.dictionary.atoms().detach()
    out = np.zeros((len(top_image), n_classes))
    for i in sorted({int(v) for v in top_image.ravel() if v >= 0}):
        x = load([i]).detach().requires_grad_(True)
        with capture(model, [ref]) as rec, torch.enable_grad():
            logits = class_output(model(x))
            acts = rec[ref]
            c = int(logits[0].argmax())
            (g,) = torch.autograd.grad(logits[0, c], acts)
        layout = layout_for(model, acts, (size, size), tap.layer)
        a = layout.to_grid(acts.detach()).float()[0].flatten(1).T  # (h w, C)
        grad = layout.to_grid(g).float()[0].flatten(1).T
        with torch.no_grad():
            codes = tap.dictionary.encode(a / tap.scale)  # (h w, K)
            terms = (codes * (grad @ atoms.T) * tap.scale).sum(0).cpu().numpy()
        mine = (top_image == i).any(1)
        out[mine, c] += terms[mine]
    return out / np.maximum((top_image >= 0).sum(1), 1)[:, None]
