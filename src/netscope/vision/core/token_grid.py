"""Turn any layer's output into the (N, C, h, w) grid that CAM methods and activation
pictures need, so vision transformers work without glue code.

Recognized layouts (``infer_layout``):
- ``nchw``: a convolutional feature map, used as it is;
- ``nhwc``: channels last, (N, h, w, C), as Swin's blocks and norms give;
- ``tokens``: a token sequence (N, T, C) = prefix tokens (class, distillation, register
  tokens: dropped) followed by h*w patch tokens in row-major order.

The grid comes from the input size and the model's patch size when the patch grid fits the
token count; otherwise from the smallest number of prefix tokens that leaves a grid with
the input's aspect ratio (197 tokens for a 224x224 input: 1 + 14x14). A user's own
``reshape`` callable replaces the guess for exotic layouts. Every layout is an index map
(slicing, reshaping, permuting), so it applies to gradients the same way as to activations,
and its adjoint maps a grid-shaped mask back to the layer's own layout (``mask_back``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.capture import LayerRef

MAX_PREFIX = 16  # class + distillation + register tokens seen in practice: at most 5
Reshape = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Layout:
    """How a layer's output maps to an (N, C, h, w) grid."""

    form: str  # "nchw", "nhwc", "tokens" or "custom"
    prefix: int = 0  # tokens before the patch grid (dropped)
    grid: tuple[int, int] | None = None  # (h, w) of the patch grid, for tokens
    fn: Reshape | None = None  # the user's transform, for "custom"

    def to_grid(self, a: torch.Tensor) -> torch.Tensor:
        if self.form == "nchw":
            return a
        if self.form == "nhwc":
            return a.permute(0, 3, 1, 2)
        if self.form == "tokens":
            h, w = self.grid
            return a[:, self.prefix:].reshape(a.shape[0], h, w, a.shape[2]).permute(0, 3, 1, 2)
        out = self.fn(a)
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise NetscopeError(f"the reshape transform must return (batch, channels, height, "
                                f"width) from {tuple(a.shape)}; it returned {got}.")
        return out

    def from_grid(self, grid: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The layer's own layout for a (N, C, h, w) grid (``like``: an output of the layer,
        whose prefix tokens are kept), so an edited grid can be put back into the network."""
        if self.form == "nchw":
            return grid
        if self.form == "nhwc":
            return grid.permute(0, 2, 3, 1)
        if self.form == "tokens":
            n, c = grid.shape[:2]
            patches = grid.permute(0, 2, 3, 1).reshape(n, -1, c)
            prefix = like[:, :self.prefix].expand(n, -1, -1) if self.prefix else patches[:, :0]
            return torch.cat([prefix.to(patches.dtype), patches], 1)
        raise NetscopeError("a layer read through a custom reshape transform cannot be "
                            "edited (its inverse is unknown); pick a layer whose output is a "
                            "feature map or a token sequence.")

    def describe(self, shape: tuple[int, ...]) -> str:
        if self.form == "tokens":
            kept = f"{self.grid[0]}x{self.grid[1]} patch tokens"
            return f"{self.prefix} prefix + {kept}" if self.prefix else kept
        if self.form == "nchw":
            return f"feature map {shape[2]}x{shape[3]}"
        if self.form == "nhwc":
            return f"channels-last grid {shape[1]}x{shape[2]}"
        return "custom reshape"

    def mask_back(self, a: torch.Tensor, grid_mask: torch.Tensor) -> torch.Tensor:
        """A mask in the layer's own layout that is 1 where ``grid_mask`` (N, C, h, w) is 1:
        the adjoint of the index map, computed by autograd (prefix tokens get 0)."""
        if self.form == "nchw":
            return grid_mask
        probe = torch.zeros_like(a, requires_grad=True)
        with torch.enable_grad():
            (back,) = torch.autograd.grad(self.to_grid(probe), probe, grid_mask.to(a.dtype))
        return back


def patch_size(model: nn.Module) -> int | None:
    """The patch size of a transformer's patch embedding: a ``patch_size`` attribute
    (torchvision, timm), else a first Conv2d whose stride equals its kernel (> 1)."""
    for m in model.modules():
        ps = getattr(m, "patch_size", None)
        if isinstance(ps, int) and ps > 1:
            return ps
        if isinstance(ps, tuple) and len(ps) == 2 and ps[0] == ps[1] and ps[0] > 1:
            return int(ps[0])
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if convs and convs[0].stride == convs[0].kernel_size and convs[0].kernel_size[0] > 1:
        return int(convs[0].kernel_size[0])
    return None


def _grid_fits(h: int, w: int, size: tuple[int, int]) -> bool:
    """Does an h x w grid cover an input of ``size`` with about equal strides?"""
    H, W = size
    if not (1 <= h <= H and 1 <= w <= W):
        return False
    return abs(math.log((H / h) / (W / w))) < math.log(1.5)


def _token_grid(n: int, size: tuple[int, int]) -> tuple[int, int] | None:
    """An h x w grid of n tokens with the input's aspect ratio, if there is one."""
    H, W = size
    h = max(1, round(math.sqrt(n * H / W)))
    for hh in (h, h - 1, h + 1):
        if hh >= 1 and n % hh == 0 and _grid_fits(hh, n // hh, size):
            return hh, n // hh
    return None


def acts_on_last_dim(module: nn.Module | None) -> bool:
    """A Linear or LayerNorm works on the last dimension: its 4-D output is channels-last."""
    return isinstance(module, nn.Linear) or (isinstance(module, nn.LayerNorm)
                                             and len(module.normalized_shape) == 1)


def infer_layout(shape: tuple[int, ...], size: tuple[int, int], patch: int | None = None,
                 name: str = "the layer", channels_last: bool = False) -> Layout:
    """The layout of an output of ``shape`` for an input of ``size`` (H, W). A 4-D output
    is channels-first unless only (dim 1, dim 2) fits the input as a grid, or the module is
    known to act on the last dimension (``channels_last``) and dims 1-2 fit."""
    if len(shape) == 4:
        first = _grid_fits(shape[2], shape[3], size)
        last = _grid_fits(shape[1], shape[2], size)
        return Layout("nhwc") if last and (channels_last or not first) else Layout("nchw")
    if len(shape) != 3:
        raise NetscopeError(
            f"{name} gives shape {tuple(shape)}, which has no spatial grid; heatmaps need a "
            f"feature map (batch, channels, height, width) or a token sequence "
            f"(batch, tokens, channels). Pick another layer (`netscope vision layers` marks "
            f"the usable ones) or pass a reshape transform.")
    tokens = shape[1]
    for grid, most in _candidate_grids(tokens, size, patch):
        if 0 <= tokens - grid[0] * grid[1] <= most:
            return Layout("tokens", tokens - grid[0] * grid[1], grid)
    where = f" with patch size {patch} (a {size[0] // patch}x{size[1] // patch} grid, or " \
        f"that grid merged 2x2 as in Swin)" if patch else ""
    raise NetscopeError(
        f"{name} gives {tokens} tokens (shape {tuple(shape)}), which do not form a grid for a "
        f"{size[0]}x{size[1]} input{where} after dropping up to {MAX_PREFIX} class/register "
        f"tokens. Pass a reshape transform that returns (batch, channels, height, width).")


def _candidate_grids(tokens: int, size: tuple[int, int], patch: int | None):
    """(grid, most prefix tokens allowed) to try, most likely first: with a known patch
    size the patch grid (with class/register tokens) and its 2x2 merges (hierarchical
    transformers, no prefix tokens); else, for 0, 1, 2... prefix tokens, a grid of at least
    2x2 with the input's aspect ratio."""
    if patch:
        h, w = size[0] // patch, size[1] // patch
        most = MAX_PREFIX
        while h >= 1 and w >= 1:
            yield (h, w), most
            if h == w == 1:
                return
            h, w, most = -(-h // 2), -(-w // 2), 0
        return
    for prefix in range(min(MAX_PREFIX, tokens - 4) + 1):
        grid = _token_grid(tokens - prefix, size)
        if grid and min(grid) >= 2:
            yield grid, prefix


def layout_for(model: nn.Module, a: torch.Tensor, size: tuple[int, int], name: str,
               reshape: Reshape | None = None) -> Layout:
    """The layout to use for layer ``name``'s output ``a``: the user's transform, or the
    inferred one."""
    if reshape is not None:
        if not callable(reshape):
            raise NetscopeError(f"reshape must be a function from the layer's output to "
                                f"(batch, channels, height, width), got {type(reshape).__name__}.")
        return Layout("custom", fn=reshape)
    module = dict(model.named_modules()).get(LayerRef.parse(name).name)
    return infer_layout(tuple(a.shape), size, patch_size(model), f"layer {name}",
                        acts_on_last_dim(module))


def as_grid(model: nn.Module, a: torch.Tensor, size: tuple[int, int], name: str,
            reshape: Reshape | None = None) -> torch.Tensor:
    """``a`` as an (N, C, h, w) grid (see the module docstring)."""
    return layout_for(model, a, size, name, reshape).to_grid(a)


@dataclass(frozen=True)
class Positions:
    """Every position of a layer's output, a transformer's prefix tokens (class, register)
    included, as (N, C, P, 1) columns: what circuits sum and edit over, since a ViT's class
    token is where its classifier reads. Same methods as ``Layout``, so code that sums over
    dims (2, 3) or edits and puts back works on either."""

    layout: Layout

    def to_grid(self, a: torch.Tensor) -> torch.Tensor:
        form = self.layout.form
        if form == "tokens":
            return a.transpose(1, 2)[..., None]
        return self.layout.to_grid(a).flatten(2)[..., None]

    def from_grid(self, columns: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        form = self.layout.form
        if form == "tokens":
            return columns[..., 0].transpose(1, 2)
        n, c = columns.shape[:2]
        h, w = self.layout.to_grid(like).shape[-2:]
        return self.layout.from_grid(columns[..., 0].reshape(n, c, h, w), like)


def positions_for(model: nn.Module, a: torch.Tensor, size: tuple[int, int],
                  name: str) -> Positions:
    """Every position of layer ``name``'s output ``a`` (see ``Positions``)."""
    return Positions(layout_for(model, a, size, name))
