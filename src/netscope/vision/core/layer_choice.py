"""Which layers can give heatmaps, and which one is the default, for CNNs and transformers.

A CNN's default is the feature map its head pools (the input of the last global pooling),
else the last Conv2d. A transformer has no such map, and the natural guess is wrong: in a
class-token ViT the patch tokens after the last block never reach the head (the head reads
the class token, and the final norm and MLP act per token), so Grad-CAM there is all zero.
The default for a transformer is therefore found by one probe pass: the output of the last
block (in the model's list of blocks) whose grid the class score still depends on, i.e. the
residual stream entering the last attention in a class-token ViT, or the last block of a
pooled one; a model without such a list gets its last LayerNorm (else any layer) with a
nonzero gradient. The residual stream, not the last block's first norm that
pytorch-grad-cam's documentation recommends (the same tokens, LayerNorm'd): on a small ViT
trained to find a textured square, Grad-CAM there localizes the square while the norm's
maps point away from it, because the norm divides out the token size that marks what the
network attends to (BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from weakref import WeakKeyDictionary

import torch
from torch import nn

from netscope.errors import NetscopeError, first_line
from netscope.vision.core.capture import LayerRef, capture, hooks
from netscope.vision.core.device import model_device, model_dtype
from netscope.vision.core.targets import class_output
from netscope.vision.core.token_grid import acts_on_last_dim, infer_layout, patch_size

NORMS = (nn.LayerNorm, nn.GroupNorm)


def _pooled_conv_layer(model: nn.Module) -> LayerRef | None:
    """The CNN rule, or None when the model looks like a transformer (its only Conv2d is a
    patch embedding and nothing pools a feature map)."""
    pools = [n for n, m in model.named_modules()
             if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))]
    if pools:
        return LayerRef(pools[-1], "input")
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs or (len(convs) == 1 and patch_size(model)):
        return None
    return LayerRef(convs[-1])


@dataclass(frozen=True)
class GridLayer:
    """A layer whose output forms a grid, with what the probe found."""

    name: str
    module_type: str
    shape: tuple[int, ...]
    layout: str
    gradient: bool  # does the top class's score depend on its grid positions?


def grid_layers(model: nn.Module, x: torch.Tensor) -> list[GridLayer]:
    """Every layer (in the order they run) whose output is a feature map or a token grid,
    with whether the top class's score has a nonzero gradient on its grid positions."""
    modules = dict(model.named_modules())
    size = tuple(x.shape[-2:])
    patch = patch_size(model)
    with capture(model, []), _recorded(modules) as seen:
        try:
            with torch.enable_grad():
                out = class_output(model(x.detach().clone().requires_grad_(True)))
        except RuntimeError as exc:
            raise NetscopeError(f"the model cannot run on a {size[0]}x{size[1]} probe image "
                                f"({first_line(exc)}).") from None
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise NetscopeError(f"choosing a layer needs class scores of shape (batch, classes); "
                                f"the model returns {got}. Name the layer (layer=..., --layer) "
                                f"and give a target for other outputs.")
        found = []
        for name, a in seen.items():
            if a.dim() not in (3, 4):
                continue
            try:
                layout = infer_layout(tuple(a.shape), size, patch, name,
                                      acts_on_last_dim(modules[name]))
            except NetscopeError:
                continue
            found.append((name, a, layout))
        score = out.amax(1).sum()
        tensors = [a for _, a, _ in found if a.requires_grad]
        grads = iter(torch.autograd.grad(score, tensors, allow_unused=True)) if tensors else None
        result = []
        for name, a, layout in found:
            g = next(grads) if a.requires_grad else None
            moves = g is not None and bool(layout.to_grid(g).abs().amax() > 0)
            result.append(GridLayer(name, type(modules[name]).__name__, tuple(a.shape),
                                    layout.describe(tuple(a.shape)), moves))
    return result


@contextmanager
def _recorded(modules: dict[str, nn.Module]) -> Iterator[dict[str, torch.Tensor]]:
    """Each module's last tensor output, in the order modules first run; the network gets
    a copy, so in-place operations downstream cannot change what was recorded."""
    seen: dict[str, torch.Tensor] = {}

    def hook(name):
        def keep(module, inputs, output):
            if isinstance(output, torch.Tensor):
                seen[name] = output
                return output.clone()
            return None
        return keep

    with hooks((m, hook(n)) for n, m in modules.items() if n):
        yield seen


def default_layer(model: nn.Module, x: torch.Tensor | None = None, size: int = 224,
                  grids: list[GridLayer] | None = None) -> LayerRef:
    """The layer heatmaps use when none is named (see the module docstring); ``x`` (or a
    probe of ``size``) is needed only for transformers, ``grids`` when ``grid_layers``
    already ran on it."""
    ref = _pooled_conv_layer(model)
    if ref is not None:
        return ref
    if grids is not None:
        return _probed_layer(model, grids)
    probe = x[:1].detach() if x is not None else probe_image(model, size)
    key = (tuple(probe.shape[-2:]), probe.dtype, str(probe.device))
    known = _CHOSEN.setdefault(model, {})
    if key not in known:  # one probe per model and input size, not one per batch
        known[key] = _probed_layer(model, grid_layers(model, probe), probe)
    return known[key]


_CHOSEN: WeakKeyDictionary = WeakKeyDictionary()


def scores_ignore_input(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether the top class scores are the same whatever the image (zero gradient with
    respect to it), as with an all-zero classifier head (torchvision's untrained ViTs)."""
    xi = x[:2].detach().clone().requires_grad_(True)
    with capture(model, []), torch.enable_grad():
        out = class_output(model(xi))
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            return False  # not class scores: a target of its own may still depend on it
        if not out.requires_grad:
            return True
        (grad,) = torch.autograd.grad(out.amax(1).sum(), xi, allow_unused=True)
    return grad is None or not bool(grad.abs().amax() > 0)


INPUT_IGNORED = ("the model's class scores do not depend on the input image (their gradient "
                 "with respect to it is zero everywhere), so no map can show anything: is "
                 "the classifier head all zeros, as torchvision builds it without weights? "
                 "Load trained weights or initialise the head.")


def _probed_layer(model: nn.Module, grids: list[GridLayer],
                  probe: torch.Tensor | None = None) -> LayerRef:
    layers = [g for g in grids if g.gradient]
    if not layers:
        if probe is not None and scores_ignore_input(model, probe):
            raise NetscopeError(INPUT_IGNORED)
        raise NetscopeError("no layer's output forms a feature map or token grid that the "
                            "class score depends on; name a layer explicitly (with a reshape "
                            "transform for an unusual layout).")
    usable = {g.name for g in layers}
    blocks = [b for b in block_list(model) if b in usable]
    if blocks:
        return LayerRef(blocks[-1])
    modules = dict(model.named_modules())
    norms = [g for g in layers if isinstance(modules[g.name], NORMS)]
    return LayerRef((norms or layers)[-1].name)


def block_list(model: nn.Module) -> list[str]:
    """The transformer's blocks: the children of its outermost Sequential/ModuleList of at
    least two modules of one type (``blocks.0``..., ``encoder.layers.encoder_layer_0``...)."""
    lists = [(n.count(".") if n else -1, -len(m), n, m) for n, m in model.named_modules()
             if isinstance(m, (nn.Sequential, nn.ModuleList)) and len(m) > 1
             and len({type(c) for c in m.children()}) == 1]
    if not lists:
        return []
    _, _, name, container = min(lists, key=lambda c: c[:3])
    return [f"{name}.{c}" if name else c for c, _ in container.named_children()]


def probe_image(model: nn.Module, size: int = 224) -> torch.Tensor:
    """A seeded random image on the model's device, in its dtype."""
    gen = torch.Generator().manual_seed(0)
    img = torch.randn((1, 3, size, size), generator=gen, dtype=model_dtype(model))
    return img.to(model_device(model))
