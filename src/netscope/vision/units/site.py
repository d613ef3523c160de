"""What the unit atlas's site needs from the model, as functions the site calls one image at
a time (a dataset's pictures never all sit in memory): the picture the model saw, and the
units' grids on it. ``render.atlas_site.save_site`` draws what these give it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from netscope.vision.models.images import load_image
from netscope.vision.units.atlas_run import probe_layers
from netscope.vision.units.fire_maps import unit_grids


@dataclass(frozen=True)
class SiteViews:
    """``picture(i)``: image i of the atlas as the model saw it (H, W, 3) in [0, 1];
    ``grids(picture)``: each layer's unit grids on a picture; the model's class names."""

    picture: Callable[[int], np.ndarray]
    grids: Callable[[np.ndarray], dict[str, np.ndarray]]
    class_names: list[str] | None


def site_views(atlas, lm, root: str | Path) -> SiteViews:
    """The site's views of ``atlas`` (made from the images under ``root``) through ``lm``."""

    def picture(i: int) -> np.ndarray:
        rgb = lm.preprocess.image(load_image(Path(root) / atlas.files[i]))
        return rgb.astype(np.float32) / 255 if rgb.dtype == np.uint8 else rgb.astype(np.float32)

    layouts, _ = probe_layers(lm, tuple(atlas.layers))

    def grids(pic: np.ndarray) -> dict[str, np.ndarray]:
        pre = lm.preprocess
        x = pre.normalize(torch.from_numpy(pic).permute(2, 0, 1)[None].to(pre.device))
        return unit_grids(lm, x.to(getattr(torch, pre.dtype)), layouts)

    return SiteViews(picture, grids, lm.class_names)
