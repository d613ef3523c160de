"""What "removed" means for an image: the reference that perturbation methods and
faithfulness metrics put in place of the pixels they take away.

- ``blur``: the image under a strong Gaussian blur (sigma 5 px, 11 px kernel, as in
  Petsiuk et al.'s RISE deletion/insertion code): the information is gone, the colours and
  the image statistics stay, so the model is not confronted with unnatural shapes;
- ``mean``: each image's mean colour everywhere;
- ``zeros``: zeros in the model's input space (after normalization: the normalization's mean
  colour, mid-grey for EfficientNet-Lite0);
- or a tensor of the images' shape (or one image's, shared by all).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from netscope.errors import NetscopeError

BASELINES = ("blur", "mean", "zeros")


def gaussian_blur(x: torch.Tensor, sigma: float = 5.0, size: int = 11) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with reflected borders."""
    r = size // 2
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2)
                  / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    pad = F.pad(x, (r, r, r, r), mode="reflect") if min(x.shape[-2:]) > r else \
        F.pad(x, (r, r, r, r), mode="replicate")
    out = F.conv2d(pad, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def baseline_like(x: torch.Tensor, baseline: str | torch.Tensor = "blur") -> torch.Tensor:
    """The baseline images for a batch ``x`` (N, C, H, W), same shape, dtype and device."""
    if isinstance(baseline, torch.Tensor):
        b = baseline.to(dtype=x.dtype, device=x.device)
        if b.dim() == 3:
            b = b[None]
        if b.dim() != 4 or b.shape[1:] != x.shape[1:] or b.shape[0] not in (1, x.shape[0]):
            raise NetscopeError(f"a baseline of shape {tuple(baseline.shape)} does not fit "
                                f"images of shape {tuple(x.shape)}: give (C, H, W), (1, C, H, W) "
                                f"or (N, C, H, W).")
        return b.expand_as(x).clone()
    if baseline == "blur":
        return gaussian_blur(x)
    if baseline == "mean":
        return x.mean((2, 3), keepdim=True).expand_as(x).clone()
    if baseline == "zeros":
        return torch.zeros_like(x)
    raise NetscopeError(f"unknown baseline {baseline!r}: use one of {', '.join(BASELINES)}, "
                        f"or a tensor of the images' shape.")


def baseline_sets(x: torch.Tensor, baselines) -> torch.Tensor:
    """(N, K, C, H, W): each image's K references (DeepLIFT-SHAP, GradientSHAP), from
    names of baselines made from each image, or a (K, C, H, W) tensor shared by all."""
    if isinstance(baselines, torch.Tensor):
        refs = baselines.to(dtype=x.dtype, device=x.device)
        if refs.dim() != 4 or tuple(refs.shape[1:]) != tuple(x.shape[1:]) or not len(refs):
            raise NetscopeError(f"baselines must be (K, C, H, W) with K >= 1 and (C, H, W) = "
                                f"{tuple(x.shape[1:])}, got {tuple(refs.shape)}.")
        return refs[None].expand(x.shape[0], *refs.shape)
    names = (baselines,) if isinstance(baselines, str) else tuple(baselines)
    if not names:
        raise NetscopeError("give at least one baseline.")
    return torch.stack([baseline_like(x, b) for b in names], 1)
