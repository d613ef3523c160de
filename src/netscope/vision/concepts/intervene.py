"""Proof by intervention: change what a layer carries of some dictionary features and watch
the class scores. A feature's part of the activations at a position is its code times its
atom; ablating it removes that part (``"zero"``) or sets its code to a reference value
(``"mean"``: its mean code, given), patching sets its codes to another image's. Everything
the dictionary does not explain (its reconstruction error) is left as it was, so only the
named features change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.concepts.learn import Learned
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.token_grid import layout_for

MODES = ("zero", "mean")


@dataclass
class Intervention:
    before: np.ndarray  # (n, classes) scores as the model gives them
    after: np.ndarray  # (n, classes) with the features changed

    def effect(self, target: int) -> np.ndarray:
        """(n,) the change of class ``target``'s score (after - before)."""
        return self.after[:, target] - self.before[:, target]


def ablate(model: nn.Module, layer: str, learned: Learned, x: torch.Tensor,
           features: list[int], mode: str = "zero",
           reference: np.ndarray | None = None) -> Intervention:
    """Scores of ``x`` before and after removing ``features`` from the layer (see the module
    docstring); ``reference`` (K,) the codes ``"mean"`` sets them to."""
    if mode not in MODES:
        raise NetscopeError(f"ablation mode must be one of {', '.join(MODES)}, got {mode!r}.")
    if mode == "mean" and reference is None:
        raise NetscopeError("mode 'mean' needs the features' mean codes (reference=...).")

    def change(u: torch.Tensor) -> torch.Tensor:
        new = u.clone()
        new[:, features] = 0.0 if mode == "zero" else torch.as_tensor(
            np.asarray(reference, np.float32)[features] / learned.scale)
        return new

    return _intervene(model, layer, learned, x, features, change)


def patch(model: nn.Module, layer: str, learned: Learned, x: torch.Tensor,
          source: torch.Tensor, features: list[int]) -> Intervention:
    """Scores of ``x`` with ``features``' codes taken, position by position, from the
    images ``source`` (same shape as ``x``)."""
    if source.shape != x.shape:
        raise NetscopeError(f"patching needs source images shaped like the images, got "
                            f"{tuple(source.shape)} for {tuple(x.shape)}.")
    donor = _codes(model, layer, learned, source)

    def change(u: torch.Tensor, i: int = 0) -> torch.Tensor:
        new = u.clone()
        new[:, features] = donor[i][:, features]
        return new

    return _intervene(model, layer, learned, x, features, change, per_image=True)


def _codes(model, layer, learned, x) -> list[torch.Tensor]:
    ref = LayerRef.parse(layer)
    with capture(model, [ref]) as rec, torch.no_grad():
        model(x)
        acts = rec[ref]
    grid = layout_for(model, acts, tuple(x.shape[-2:]), layer).to_grid(acts).float()
    return [learned.encode(g.flatten(1).T) for g in grid]


def _intervene(model, layer, learned: Learned, x, features, change,
               per_image: bool = False) -> Intervention:
    k = learned.model.features
    bad = [f for f in features if not 0 <= f < k]
    if bad or not features:
        raise NetscopeError(f"feature {bad[0] if bad else '(none)'} does not exist: the "
                            f"dictionary has features 0..{k - 1}.")
    ref = LayerRef.parse(layer)
    with capture(model, [ref]) as rec, torch.no_grad():
        before = model(x)
        acts = rec[ref]
    layout = layout_for(model, acts, tuple(x.shape[-2:]), layer)
    grid = layout.to_grid(acts).float()
    n, channels, h, w = grid.shape
    atoms = learned.model.atoms().detach()
    if atoms.shape[1] != channels:
        raise NetscopeError(f"the dictionary has {atoms.shape[1]} channels but layer {layer} "
                            f"has {channels}: it was learned on another layer or model.")
    edited = []
    for i in range(n):
        u = learned.encode(grid[i].flatten(1).T)  # (h w, K)
        new = change(u, i) if per_image else change(u)
        delta = ((new - u) @ atoms) * learned.scale  # only the named features move
        edited.append(grid[i] + delta.T.reshape(channels, h, w))
    new_acts = layout.from_grid(torch.stack(edited).to(acts.dtype), acts)
    with capture(model, [ref], edit=lambda _: new_acts) as _, torch.no_grad():
        after = model(x)
    return Intervention(before.float().cpu().numpy(), after.float().cpu().numpy())
