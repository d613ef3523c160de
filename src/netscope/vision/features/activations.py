"""Intermediate activations: what each layer outputs for one image, and which layers exist."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from netscope.errors import NetscopeError, first_line
from netscope.vision.core.capture import SCRIPTED, LayerRef, capture, hooks
from netscope.vision.core.device import model_device, model_dtype
from netscope.vision.core.layer_choice import block_list
from netscope.vision.core.token_grid import as_grid


@dataclass(frozen=True)
class LayerInfo:
    name: str
    module_type: str
    shape: tuple[int, ...] | None  # output shape for the probe input; None if it did not run
    calls: int


def list_layers(model: nn.Module, input_size: int = 224) -> list[LayerInfo]:
    """Every named submodule with its output shape for one probe image."""
    names = [n for n, _ in model.named_modules() if n]
    shapes: dict[str, list[tuple[int, ...]]] = {n: [] for n in names}

    def hook(name):
        def record(module, inputs, output):
            if isinstance(output, torch.Tensor):
                shapes[name].append(tuple(output.shape))
        return record

    modules = dict(model.named_modules())
    with capture(model, []), hooks((modules[n], hook(n)) for n in names), torch.no_grad():
        try:
            model(torch.zeros(1, 3, input_size, input_size, dtype=model_dtype(model),
                              device=model_device(model)))
        except RuntimeError as exc:
            raise NetscopeError(f"the model cannot run on a {input_size}x{input_size} probe "
                                f"image ({first_line(exc)}); use a larger size.") from None
    return [LayerInfo(n, type(modules[n]).__name__, shapes[n][-1] if shapes[n] else None,
                      len(shapes[n])) for n in names]


def conv_stages(model: nn.Module) -> list[str]:
    """The natural 'stages' to show: children of the top-level containers and top-level convs,
    keeping only those that hold a convolution; for a transformer (at most one such stage,
    its patch embedding) the blocks of its longest block list instead."""
    stages = []
    for name, child in model.named_children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)):
            stages += [f"{name}.{n}" for n, c in child.named_children() if _has_conv(c)]
        elif isinstance(child, nn.Conv2d) or (_has_conv(child) and not _is_head(child)):
            stages.append(name)
    return stages if len(stages) > 1 else (block_list(model) or stages)


def _has_conv(m: nn.Module) -> bool:
    return any(isinstance(x, nn.Conv2d) for x in m.modules())


def _is_head(m: nn.Module) -> bool:
    return any(isinstance(x, nn.Linear) for x in m.modules())


class Activations(dict):
    """Layer name -> output tensor (a dict), shown in a notebook as each layer's channels
    on the first image."""

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k!r}: {tuple(v.shape)}" for k, v in self.items())
        return f"Activations({{{shapes}}})"

    def _grids(self) -> dict[str, torch.Tensor]:
        return {k: v[0].detach().float().cpu() for k, v in self.items()
                if isinstance(v, torch.Tensor) and v.dim() == 4}

    def _repr_png_(self) -> bytes | None:
        from netscope.render.notebook import activations_png

        grids = self._grids()
        if not grids:
            return None
        name, act = next(iter(grids.items()))
        return activations_png(name, act.numpy())

    def _repr_html_(self) -> str:
        from netscope.render.notebook import activations_png, fragment
        from netscope.render.png import img_tag

        figs = "".join(img_tag(activations_png(k, v.numpy()), k)
                       for k, v in self._grids().items())
        return fragment(f"<p>{html.escape(repr(self))}</p>{figs}")


def activations(model: nn.Module, x: torch.Tensor,
                layers: Sequence[str | LayerRef] | None = None,
                grid: bool = True) -> Activations:
    """Each requested layer's output for input ``x`` (default: every stage); with ``grid``
    token sequences and channels-last maps come back as (N, C, h, w) grids (class and
    register tokens dropped), other outputs as they are."""
    refs = [LayerRef.parse(r) for r in (layers or conv_stages(model))]
    if not refs:
        if isinstance(model, torch.jit.ScriptModule):
            raise NetscopeError(SCRIPTED)
        raise NetscopeError("this model has no convolution stages to show by default; name "
                            "the layers (--layers L1,L2; `netscope vision layers` lists them).")
    with capture(model, refs) as rec, torch.no_grad():
        model(x)
        out = {str(r): rec[r].detach() for r in refs}
    if grid:
        out = {k: _maybe_grid(model, v, tuple(x.shape[-2:]), k) for k, v in out.items()}
    return Activations(out)


def _maybe_grid(model: nn.Module, a: torch.Tensor, size: tuple[int, int], name: str):
    if a.dim() not in (3, 4):
        return a
    try:
        return as_grid(model, a, size, name)
    except NetscopeError:
        return a
