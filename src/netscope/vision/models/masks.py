"""Segmentation masks from image files, framed as the model sees the image."""

from __future__ import annotations

from pathlib import Path

import torch

from netscope.errors import NetscopeError
from netscope.vision.models.images import load_image
from netscope.vision.models.zoo import Preprocess

THRESHOLD = 0.5  # mean of the RGB channels above this is inside (white = inside)


def load_mask(path: str | Path, pre: Preprocess) -> torch.Tensor:
    """(H, W) float mask, 1 inside: the file cropped and resized as an image would be,
    then thresholded at mid-grey; an empty mask is an error, not an all-zero target."""
    inside = torch.from_numpy(pre.image(load_image(path)).mean(2) > THRESHOLD)
    if not inside.any():
        raise NetscopeError(f"{path}: the mask is empty (no white pixel) after cropping it "
                            f"as the image is cropped.")
    return inside.float()
