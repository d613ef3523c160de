"""What every attribution method returns: maps per image, with what they explain.

Maps are divided by their maximum (``normalize="max"``, the Grad-CAM paper's convention) or
min-max scaled (``"minmax"``); an all-zero map stays zero, never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from netscope.errors import NetscopeError
from netscope.vision.core.targets import Resolved, batch_size, class_output

NORMALIZE = ("max", "minmax", "none")
REDUCTIONS = ("abs-sum", "abs-max", "sum-relu")  # attributions (N, C, H, W) -> maps (N, H, W)


def reduced(attr: torch.Tensor, how: str) -> torch.Tensor:
    """A method's map from its attributions: |a| summed over colours (Integrated
    Gradients, DeepLIFT, Input x Gradient), |a|'s maximum over colours (saliency), or the
    positive part of their sum (relevance, ablation drops)."""
    if how == "abs-sum":
        return attr.abs().sum(1)
    if how == "abs-max":
        return attr.abs().amax(1)
    if how == "sum-relu":
        return attr.sum(1).clamp(min=0)
    raise NetscopeError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {how!r}.")


@dataclass
class Heatmaps:
    """Maps (N, h, w) at the method's resolution (a layer's grid, or the input's pixels).

    ``target`` is what each map explains (``targets.Resolved``; None for class-agnostic
    methods such as Eigen-CAM and attention rollout), ``classes`` the class of each map (-1
    where the target has none; for class-agnostic methods the top-1 class, for labels
    only). ``attributions`` keeps signed per-pixel values (N, C, H, W) for the methods that
    have them (Integrated Gradients, guided Grad-CAM), and ``reduction`` how the maps come
    from them (so a wrapper such as the noise tunnel can average attributions and draw the
    map the method would); ``extras`` per-image numbers a method reports (Integrated
    Gradients' completeness error)."""

    maps: torch.Tensor
    logits: Any
    target: Resolved | None
    classes: torch.Tensor
    layer: str
    method: str
    normalized: str = "max"
    warnings: list[str] = field(default_factory=list)  # what a careful user must know
    attributions: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    signed_evidence: bool = False  # attributions are evidence for (+) and against (-) the
    # target (LRP's relevance, the segment methods' values): drawn with their sign
    reduction: str | None = None  # how maps come from attributions (``reduced``)

    def __post_init__(self) -> None:
        self.logits = class_output(self.logits)  # a ModelOutput's logits, not the wrapper

    def __repr__(self) -> str:
        from netscope.render.notebook import heatmaps_text

        return heatmaps_text(self)

    def _repr_png_(self) -> bytes:
        from netscope.render.notebook import heatmaps_png

        return heatmaps_png(self)

    def _repr_html_(self) -> str:
        from netscope.render.notebook import heatmaps_html

        return heatmaps_html(self)

    def show(self, images) -> Shown:
        """The maps over the pictures they explain (one RGB array per map, or one for all,
        any size: the maps are resized to it), for a notebook: ``heat.show(rgb)``. Pictures
        are checked here: one per map (or one), finite RGB values."""
        import numpy as np

        pictures = list(images) if isinstance(images, list | tuple) else [images]
        n = len(self.maps)
        if len(pictures) not in (1, n):
            raise NetscopeError(f"show: {len(pictures)} pictures for {n} map(s); give one "
                                f"per map, or one for all.")
        for i, pic in enumerate(pictures):
            pictures[i] = arr = _picture(pic, i)
            if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
                raise NetscopeError(f"show: picture {i} has shape {arr.shape}; an RGB picture "
                                    f"is (height, width, 3).")
            if not np.isfinite(arr).all():
                raise NetscopeError(f"show: picture {i} holds NaN or infinity; draw the "
                                    f"picture the model saw (finite values).")
        return Shown(self, pictures if isinstance(images, list | tuple) else pictures[0])

    def signed(self) -> torch.Tensor | None:
        """For methods whose attributions are signed evidence (LRP, feature ablation,
        Shapley sampling, KernelSHAP, LIME): their sum over colours per pixel (N, H, W),
        scaled by each image's largest magnitude into [-1, 1], so evidence against the
        target is drawn too; None for the others."""
        if not self.signed_evidence or self.attributions is None:
            return None
        values = self.attributions.sum(1) if self.attributions.dim() == 4 else \
            self.attributions
        top = values.abs().flatten(1).amax(1).clamp(min=1e-30)
        return values / top.view(-1, *([1] * (values.dim() - 1)))

    def upsampled(self, size: tuple[int, int]) -> torch.Tensor:
        """Bilinear upsampling to the input's (H, W), then rescaled as the maps were (an
        upsampled map's maximum can differ from the map's: it is divided again)."""
        return upsample(self.maps, size, self.normalized)


def upsample(maps: torch.Tensor, size: tuple[int, int], normalize: str = "max") -> torch.Tensor:
    """(N, h, w) maps bilinearly resized to ``size`` and scaled per image (``normalize``)."""
    up = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)
    return normalize_maps(up[:, 0], normalize)


def normalize_maps(maps: torch.Tensor, how: str = "max") -> torch.Tensor:
    """Per-image scaling to [0, 1]; maps whose maximum (or range) is zero stay all zero."""
    if how not in NORMALIZE:
        raise NetscopeError(f"normalize must be one of {NORMALIZE}, got {how!r}.")
    if how == "none":
        return maps
    flat = maps.flatten(1)
    hi = flat.max(1).values.view(-1, *([1] * (maps.dim() - 1)))
    lo = flat.min(1).values.view(hi.shape) if how == "minmax" else torch.zeros_like(hi)
    span = hi - lo
    safe = torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, (maps - lo) / safe, torch.zeros_like(maps))


def normalized_array(maps: np.ndarray, how: str = "minmax") -> np.ndarray:
    """``normalize_maps`` for NumPy maps (N, ...), one scale per map: what pictures draw."""
    return normalize_maps(torch.from_numpy(np.asarray(maps)), how).numpy()


def top_classes(output: Any) -> torch.Tensor:
    """Each image's top-1 class for labels, -1 when the output is not class scores."""
    output = class_output(output)
    if isinstance(output, torch.Tensor) and output.dim() == 2:
        return output.argmax(1)
    return torch.full((batch_size(output),), -1, dtype=torch.long)  # labels: on the CPU


@dataclass
class Shown:
    """Heatmaps drawn over their pictures (``Heatmaps.show``)."""

    heat: Heatmaps
    images: Any

    def _repr_png_(self) -> bytes:
        from netscope.render.notebook import overlay_png

        return overlay_png(self.heat, self.images)

    def __repr__(self) -> str:
        return f"{self.heat!r}, shown over its image(s)"


def _picture(pic, i: int):
    """A picture for ``show``: an array (a grey one made RGB), or an image file's path."""
    import numpy as np

    if pic is None:
        raise NetscopeError(f"show: picture {i} is None; give the picture each map explains "
                            f"(an RGB array, a PIL image or an image file's path).")
    if isinstance(pic, str | Path):
        from PIL import Image, UnidentifiedImageError

        if not Path(pic).is_file():
            raise NetscopeError(f"show: {pic}: no such image file.")
        try:
            with Image.open(pic) as image:
                return np.asarray(image.convert("RGB"), dtype=np.float64) / 255
        except (UnidentifiedImageError, OSError) as exc:
            raise NetscopeError(f"show: {pic}: not an image ({exc}).") from None
    arr = np.asarray(pic, dtype=np.float64)
    return np.repeat(arr[..., None], 3, axis=-1) if arr.ndim == 2 else arr
