"""Segmentation masks from image files, framed as the model sees the image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from netscope.errors import NetscopeError
from netscope.vision.models.images import image_files, load_image
from netscope.vision.models.zoo import Preprocess

THRESHOLD = 0.5  # mean of the RGB channels above this is inside (white = inside)


def load_mask(path: str | Path, pre: Preprocess, raw: np.ndarray | None = None
              ) -> torch.Tensor:
    """(H, W) float mask, 1 inside: the file (or its ``raw`` pixels, already read) cropped
    and resized as an image would be, then thresholded at mid-grey; an empty mask is an
    error, not an all-zero target."""
    raw = load_image(path) if raw is None else raw
    inside = torch.from_numpy(pre.image(raw).mean(2) > THRESHOLD)
    if not inside.any():
        raise NetscopeError(f"{path}: the mask is empty (no white pixel) after cropping it "
                            f"as the image is cropped.")
    return inside.float()


def masks_for(images: Sequence[tuple[str, np.ndarray]], folder: str | Path,
              pre: Preprocess) -> torch.Tensor:
    """(N, H, W) masks of (name, RGB) images, framed as the model sees them: the mask of
    image ``name`` is ``folder/name.<an image suffix>``, the image's size, white inside. A
    missing mask, or one of another size, is an error naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NetscopeError(f"{folder}: not a folder of masks (give the folder that holds "
                            f"one mask per image, named as the image).")
    files = {p.stem: p for p in image_files(folder)}
    missing = [name for name, _ in images if name not in files]
    if missing:
        raise NetscopeError(f"no mask for {len(missing)} of {len(images)} image(s) in "
                            f"{folder} ({', '.join(missing[:3])}): the mask of image NAME is "
                            f"{folder}/NAME.png (white = inside).")
    out = []
    for name, rgb in images:
        raw = load_image(files[name])
        if raw.shape[:2] != rgb.shape[:2]:
            raise NetscopeError(f"{files[name]}: the mask is {raw.shape[1]} x {raw.shape[0]} "
                                f"pixels, its image {rgb.shape[1]} x {rgb.shape[0]}; a mask "
                                f"must have its image's size.")
        out.append(load_mask(files[name], pre, raw))
    return torch.stack(out)
