"""Images with NaN or infinite values are refused before any method runs: one bad pixel
would otherwise spread through batch-wide statistics (LRP's box bounds, normalizations) to
the other images' maps, or come back as an all-zero map."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from netscope.errors import NetscopeError


def finite_images(method: Callable) -> Callable:
    """Wrap a method ``(model, x, ...)``: ``x`` must be finite everywhere."""

    @functools.wraps(method)
    def checked(model, x, *args, **kwargs):
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            bad = ~torch.isfinite(x.detach()).flatten(1).all(1)
            if bad.any():
                first = int(torch.nonzero(bad)[0])
                raise NetscopeError(f"image {first} of the batch holds NaN or infinite values "
                                    f"({int(bad.sum())} image(s) in all); fix or drop it: "
                                    f"no map is made from it.")
        return method(model, x, *args, **kwargs)

    return checked
