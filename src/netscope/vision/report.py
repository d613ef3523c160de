"""Everything a per-image report shows, computed in one place: predictions, Grad-CAM and
saliency for the top classes, and activations of a few layers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from netscope.vision.core.heatmaps import Heatmaps
from netscope.vision.core.host import host
from netscope.vision.features.activations import activations, conv_stages
from netscope.vision.methods.grad_cam_family import grad_cam
from netscope.vision.methods.gradients import saliency
from netscope.vision.methods.random_floor import random_map
from netscope.vision.metrics.faithfulness import deletion, insertion
from netscope.vision.models.predict import predict
from netscope.vision.models.zoo import LoadedModel


@dataclass
class ClassView:
    index: int
    name: str
    probability: float
    gradcam: np.ndarray  # (H, W) in [0, 1], at the model's input resolution
    saliency: np.ndarray  # (H, W) in [0, 1]


@dataclass
class Explanation:
    title: str
    image: np.ndarray  # the RGB crop the model saw, (H, W, 3) in [0, 1]
    predictions: list[tuple[int, str, float]]
    classes: list[ClassView]
    layer: str
    activations: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (C, h, w)
    smooth: int = 0  # SmoothGrad samples behind the saliency maps (0: plain gradient)
    # how faithful the top class's Grad-CAM map is, beside random maps' scores:
    # {"deletion": (gradcam, [random...]), "insertion": (...), "steps": n,
    #  "verdict": "better" | "worse" | "cannot tell", "why": sentence}
    faithfulness: dict = field(default_factory=dict)


FAITHFULNESS_STEPS = 20
RANDOM_MAPS = 10  # beating all 10 on a metric: a permutation p of 1/11 = 0.09
SURE = 0.1


def faithfulness(lm: LoadedModel, x: torch.Tensor, heat: Heatmaps, steps: int,
                 randoms: int = RANDOM_MAPS) -> dict:
    """Deletion and insertion AUC of the first map in ``heat`` and of ``randoms`` random
    maps (one batch), with the verdict ``verdict`` draws from them."""
    t = heat.classes[:1]
    many = x[:1].expand(randoms, -1, -1, -1)
    rand = random_map(lm.model, many, t.repeat(randoms)).maps
    out: dict = {"steps": steps}
    for metric, curve in (("deletion", deletion), ("insertion", insertion)):
        own = float(curve(lm.model, x[:1], heat.maps[:1], t, steps).auc[0])
        out[metric] = (own, curve(lm.model, many, rand, t.repeat(randoms), steps).auc.tolist())
    out["verdict"], out["why"] = verdict(*out["deletion"], *out["insertion"])
    return out


def verdict(deletion_auc: float, deletion_random: Sequence[float], insertion_auc: float,
            insertion_random: Sequence[float]) -> tuple[str, str]:
    """Better / worse than random maps, or cannot tell, from where the map's AUCs fall
    among the random maps' (a permutation p-value per metric and direction: (1 + random
    maps at least as good) / (random maps + 1); lower deletion and higher insertion are
    better). Better needs both metrics sure, worse one; anything else cannot tell."""
    n = len(deletion_random)
    beaten_d = sum(r <= deletion_auc for r in deletion_random)  # random as good or better
    beaten_i = sum(r >= insertion_auc for r in insertion_random)
    p_d, p_i = (1 + beaten_d) / (n + 1), (1 + beaten_i) / (n + 1)
    counts = (f"{n - beaten_d} of {n} random maps beaten on deletion, {n - beaten_i} of {n} "
              f"on insertion")
    if p_d <= SURE and p_i <= SURE:
        return "better", f"better than random maps: {counts} (p {max(p_d, p_i):.2f})"
    worse_d, worse_i = (1 + n - beaten_d) / (n + 1), (1 + n - beaten_i) / (n + 1)
    if min(worse_d, worse_i) <= SURE:  # below (nearly) every random map on a metric
        return "worse", (f"worse than random maps ({counts}, p {min(worse_d, worse_i):.2f}): "
                         f"treat this map with suspicion")
    return "cannot tell", (f"cannot tell ({counts}, p {max(p_d, p_i):.2f}): too close to "
                           f"random maps to be sure with one image; `netscope vision "
                           f"evaluate` on more images and steps decides")


def pick_layers(stages: Sequence[str], k: int = 3) -> list[str]:
    """k stages spread from first to last."""
    if len(stages) <= k:
        return list(stages)
    idx = np.linspace(0, len(stages) - 1, k).round().astype(int)
    return [stages[i] for i in dict.fromkeys(idx)]


def explain(lm: LoadedModel, rgb: np.ndarray, title: str, top: int = 3,
            layer: str | None = None, activation_layers: Sequence[str] | None = None,
            smooth: int = 0, faithful: bool = True,
            progress: Callable[[str], None] | None = None) -> Explanation:
    """Top-5 predictions, and for the top ``top`` classes Grad-CAM and saliency maps;
    ``faithful`` adds the deletion/insertion scores of the top class's Grad-CAM map (against
    random maps: the longest step, announced to ``progress``)."""
    say = progress or (lambda message: None)
    x = lm.preprocess.tensor(rgb)
    size = tuple(x.shape[-2:])
    preds = predict(lm.model, x, 5, lm.class_names)[0]
    chosen = preds[:top]
    targets = [i for i, _, _ in chosen]
    batch = x.expand(len(targets), -1, -1, -1)
    say(f"{title}: Grad-CAM and saliency of the top {len(targets)} classes, activations")
    heat = grad_cam(lm.model, batch, targets, layer=layer)
    sal = saliency(lm.model, batch, targets, samples=smooth)
    up = host(heat.upsampled(size))
    sal_up = host(sal.maps)
    views = [ClassView(i, n, p, up[j], sal_up[j]) for j, (i, n, p) in enumerate(chosen)]
    layers = list(activation_layers or pick_layers(conv_stages(lm.model)))
    acts = {k: host(v[0]) for k, v in activations(lm.model, x, layers).items()} if layers else {}
    if faithful:
        say(f"{title}: deletion and insertion of Grad-CAM and {RANDOM_MAPS} random maps")
    faith = faithfulness(lm, x, heat, FAITHFULNESS_STEPS) if faithful else {}
    return Explanation(title, lm.preprocess.image(rgb), preds, views, heat.layer, acts, smooth,
                       faith)


def as_numpy_images(t: torch.Tensor) -> list[np.ndarray]:
    return [host(im.permute(1, 2, 0)) for im in t]
