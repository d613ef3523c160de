"""What every attribution method checks at its entry, so a misuse gets one clear sentence
instead of a PyTorch error from deep inside (or a silent wrong answer):

- the images are a float tensor (N, C, H, W) (for a model that starts with a 2-D
  convolution; others may take vectors or tokens): a NumPy array is taken as a tensor, one
  image without its batch dimension or a channels-last batch is refused with the fix,
  integer pixels are refused (their scale is unknown: normalize them as the model expects);
- a float type other than the model's is cast to it, and images on another device are moved
  to the model's, each with a warning;
- a model whose weights are on the meta device (no values) is refused;
- ``layer`` may be given as the module itself (it is found by name);
- NaN or infinite values are refused: one bad pixel would otherwise spread through
  batch-wide statistics (LRP's box bounds, normalizations) to the other images' maps, or
  come back as an all-zero map.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from netscope.errors import NetscopeError


def checked_images(method: Callable) -> Callable:
    """Wrap a method ``(model, x, ...)`` with the entry checks of the module docstring."""

    @functools.wraps(method)
    def checked(model, x, *args, **kwargs):
        x = _as_batch(model, x, method.__name__)
        if isinstance(kwargs.get("layer"), nn.Module):
            kwargs["layer"] = _layer_name(model, kwargs["layer"], method.__name__)
        bad = ~torch.isfinite(x.detach()).flatten(1).all(1)
        if bad.any():
            first = int(torch.nonzero(bad)[0])
            raise NetscopeError(f"image {first} of the batch holds NaN or infinite values "
                                f"({int(bad.sum())} image(s) in all); fix or drop it: "
                                f"no map is made from it.")
        return method(model, x, *args, **kwargs)

    return checked


def _as_batch(model: nn.Module, x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise NetscopeError(f"{name}: the images must be a tensor (N, C, H, W), got "
                            f"{type(x).__name__}; make one from a picture with "
                            f"lm.preprocess.tensor(rgb).")
    _check_shape(model, x, name)
    if not x.is_floating_point():
        raise NetscopeError(f"{name}: the images are {x.dtype} pixels, whose scale the method "
                            f"cannot know; pass floats normalized as the model expects "
                            f"(lm.preprocess.tensor(rgb) does it).")
    weights = next((p for p in model.parameters()), None) if isinstance(model, nn.Module) \
        else None
    if weights is None:
        return x
    if weights.is_meta:
        raise NetscopeError(f"{name}: the model's weights are on the meta device (shapes "
                            f"without values); load its weights before explaining it.")
    if x.dtype != weights.dtype and weights.is_floating_point():
        warnings.warn(f"netscope {name}: the images are {x.dtype}, the model "
                      f"{weights.dtype}; cast to {weights.dtype}.", stacklevel=3)
        x = x.to(weights.dtype)
    if x.device != weights.device:
        warnings.warn(f"netscope {name}: the images are on {x.device}, the model on "
                      f"{weights.device}; moved to {weights.device}.", stacklevel=3)
        x = x.to(weights.device)
    return x


def _check_shape(model, x: torch.Tensor, name: str) -> None:
    """For a model that starts with a 2-D convolution: a batch (N, C, H, W) with its
    channels (other models may take feature vectors or token sequences)."""
    # the first module that holds weights, when it is a 2-D convolution (the stem: models
    # register it first); anything else and the input's form is not known here
    first = next((m for m in model.modules() if any(True for _ in m.parameters(
        recurse=False))), None) if isinstance(model, nn.Module) else None
    if not isinstance(first, nn.Conv2d):
        return
    c = first.in_channels
    if x.dim() == 3 and x.shape[0] == c:
        raise NetscopeError(f"{name}: the images have shape {tuple(x.shape)}, one image "
                            f"without its batch dimension; pass x[None] (N, C, H, W).")
    if x.dim() != 4:
        raise NetscopeError(f"{name}: the images must be a batch (N, C, H, W) with C = {c}; "
                            f"got shape {tuple(x.shape)}.")
    if x.shape[1] != c and x.shape[-1] == c:
        raise NetscopeError(f"{name}: the images have shape {tuple(x.shape)}, channels last; "
                            f"pass x.permute(0, 3, 1, 2) (N, C, H, W).")
    if x.shape[1] != c:
        raise NetscopeError(f"{name}: the images must be a batch (N, C, H, W) with C = {c} "
                            f"(the model's first convolution takes {c}); got shape "
                            f"{tuple(x.shape)}.")


def _layer_name(model: nn.Module, module: nn.Module, name: str) -> str:
    for found, m in model.named_modules():
        if m is module and found:
            return found
    raise NetscopeError(f"{name}: the layer given ({type(module).__name__}) is not a module "
                        f"of this model; pass one of its modules or its name.")
