"""Does the map point at the object? Each image's map (at the input's size, as it lies on
the image) against a mask of where the object is, as Quantus 0.6 (Hedström et al. 2023)
scores it: the pointing game (Zhang et al. 2018: the map's maximum falls inside),
relevance mass accuracy and relevance rank accuracy (Arras et al. 2022: the share of the
map's mass inside; the share of the K most relevant pixels inside, K the mask's size) and
the ROC AUC of the map as a pixel classifier of the mask (Fawcett 2006). All four: higher
is better. Ties in the rank accuracy's top K are broken by pixel order (Quantus leaves
them to NumPy's unstable sort)."""

from __future__ import annotations

import torch
from scipy.stats import rankdata

from netscope.errors import NetscopeError
from netscope.vision.metrics.faithfulness import input_maps
from netscope.vision.metrics.scored import MetricInput, Scores


def check_masks(masks: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """(N, H, W) boolean masks that fit the images, or an error saying what is wrong."""
    if masks is None:
        raise NetscopeError("localisation needs a mask per image (vision evaluate --masks "
                            "DIR, or evaluate(..., masks=)).")
    m = torch.as_tensor(masks)
    want = (x.shape[0], *x.shape[-2:])
    if m.dim() != 3 or tuple(m.shape) != want:
        raise NetscopeError(f"masks of shape {tuple(m.shape)} do not fit {x.shape[0]} "
                            f"image(s) of {x.shape[-2]} x {x.shape[-1]} pixels: give one "
                            f"mask per image, shape {want}.")
    inside = m > 0.5
    empty = [i for i in range(inside.shape[0]) if not inside[i].any()]
    if empty:
        raise NetscopeError(f"the mask of image {empty[0]} is empty: nothing to localise "
                            f"(white = inside).")
    if bool(inside.flatten(1).all(1).any()):
        raise NetscopeError("a mask covers the whole image: localisation cannot be scored "
                            "(nothing lies outside it).")
    return inside.to(x.device)


def localisation_scores(inp: MetricInput) -> Scores:
    """The registry's localisation metric (module docstring)."""
    inside = check_masks(inp.masks, inp.x).flatten(1)
    a = input_maps(inp.maps, inp.x).flatten(1).double()
    top = a == a.amax(1, keepdim=True)
    total = a.sum(1)
    mass = torch.where(total > 0, (a * inside).sum(1) / total.clamp(min=1e-300),
                       torch.zeros_like(total))
    k = inside.sum(1)
    order = torch.argsort(-a, dim=1, stable=True)
    first_k = torch.arange(a.shape[1], device=a.device)[None] < k[:, None]
    rank = (inside.gather(1, order) & first_k).sum(1) / k
    return Scores({"pointing_game": (top & inside).any(1).double(),
                   "relevance_mass": mass, "relevance_rank": rank.double(),
                   "localisation_auc": _roc_auc(a, inside)})


def _roc_auc(a: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """ROC AUC of each row's values as scores of its mask, ties counted half (the
    Mann-Whitney statistic of average ranks)."""
    ranks = torch.from_numpy(rankdata(a.cpu().numpy(), axis=1, method="average"))
    pos = inside.cpu()
    n_pos = pos.sum(1).double()
    n_neg = pos.shape[1] - n_pos
    u = (ranks * pos).sum(1) - n_pos * (n_pos + 1) / 2
    return (u / (n_pos * n_neg)).to(a.device)
