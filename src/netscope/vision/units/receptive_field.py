"""Which input pixels a unit of a layer sees: its receptive field.

Two ways, and the atlas says which one each layer uses:

- ``geometry``: read from the network's own arithmetic. The model is traced (``torch.fx``)
  and every node carries, per axis, the field size, the jump (input pixels between
  neighbouring units) and the centre of unit 0's field, through convolutions and pooling
  (kernel, stride, padding, dilation), explicit padding, element-wise operations and
  residual sums (the union of the branches' fields). Exact for convolutional paths.
- ``effective``: where the geometry cannot be read (attention, a global gate such as
  squeeze-and-excitation, normalization over the whole map, a model fx cannot trace): the
  region where the gradient of the centre unit's activation is non-negligible (at least
  1% of its largest absolute value, averaged over a few noise images), a box shifted by
  the layer's stride for the other units (Luo et al. 2016, "Understanding the Effective
  Receptive Field").

Coordinates are pixel indices of the resized model input; a field's box may extend past
the image (the patch is then padded).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from netscope.errors import NetscopeError, first_line
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.device import model_device, model_dtype

EFFECTIVE_SHARE = 0.01  # gradient at least this share of its maximum counts as seen


@dataclass(frozen=True)
class Field:
    """Per axis (y, x): field size, jump between units and centre of unit (0, 0)."""

    size: tuple[float, float]
    jump: tuple[float, float]
    start: tuple[float, float]
    method: str  # "geometry" or "effective"

    def centre(self, y: int, x: int) -> tuple[float, float]:
        """Input-pixel centre of the unit at grid position (y, x)."""
        return self.start[0] + y * self.jump[0], self.start[1] + x * self.jump[1]

    def box(self, y: int, x: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) pixel box of the unit's field, bottom/right exclusive,
        not clipped to the image."""
        cy, cx = self.centre(y, x)
        top = math.floor(cy - (self.size[0] - 1) / 2 + 1e-9)
        left = math.floor(cx - (self.size[1] - 1) / 2 + 1e-9)
        return top, left, top + int(round(self.size[0])), left + int(round(self.size[1]))


@dataclass(frozen=True)
class _Geo:
    size: tuple[float, float]
    jump: tuple[float, float]
    start: tuple[float, float]
    grid: tuple[int, int]


POINTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardsigmoid,
                     nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.ELU, nn.Mish, nn.PReLU, nn.Softplus,
                     nn.BatchNorm2d, nn.Dropout, nn.Dropout2d, nn.Identity, nn.Hardtanh)
POINTWISE_FUNCTIONS = {operator.add, operator.mul, operator.sub, operator.truediv, torch.add,
                       torch.mul, torch.sub, torch.relu, F.relu, F.relu6, F.hardtanh,
                       torch.sigmoid, F.silu, F.gelu, F.dropout, torch.clamp, torch.tanh,
                       F.hardswish, F.leaky_relu, torch.cat, F.batch_norm}
POINTWISE_METHODS = {"relu", "clamp", "clamp_", "add", "mul", "sub", "sigmoid", "contiguous",
                     "relu_", "add_", "mul_", "div", "tanh"}
_CONV_FUNCTIONS = {F.conv2d: "conv", torch.conv2d: "conv", F.max_pool2d: "pool",
                   F.avg_pool2d: "pool"}


def receptive_fields(model: nn.Module, layers: list[str], size: int) -> dict[str, Field]:
    """The field of each layer's units (see the module docstring)."""
    geo = _geometry(model, layers, size)
    out = {}
    for name in layers:
        g = geo.get(name)
        out[name] = (Field(g.size, g.jump, g.start, "geometry") if g is not None
                     else effective_field(model, name, size))
    return out


def _geometry(model: nn.Module, layers: list[str], size: int) -> dict[str, _Geo | None]:
    try:
        gm = fx.symbolic_trace(model)
        from torch.fx.passes.shape_prop import ShapeProp

        probe = torch.zeros(1, 3, size, size, dtype=model_dtype(model), device=model_device(model))
        with capture(model, []), torch.no_grad():
            ShapeProp(gm).propagate(probe)
    except Exception:  # any model fx cannot trace: every layer falls back to the gradient
        return {}
    geo: dict[fx.Node, _Geo | None] = {}
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        geo[node] = _node_geo(node, geo, modules)
    return {name: geo.get(_layer_node(gm, name)) for name in layers}


def _layer_node(gm: fx.GraphModule, name: str) -> fx.Node | None:
    """The node that produces the layer's output: its own call, or for a container the last
    node traced inside it."""
    ref = LayerRef.parse(name)
    if ref.port != "output":
        return None
    own = [n for n in gm.graph.nodes if n.op == "call_module" and n.target == ref.name]
    if own:
        return own[ref.call] if -len(own) <= ref.call < len(own) else None
    inside = [n for n in gm.graph.nodes if ref.name in n.meta.get("nn_module_stack", {})]
    return inside[-1] if inside else None


def _shape(node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _node_geo(node: fx.Node, geo: dict, modules: dict) -> _Geo | None:
    shape = _shape(node)
    if node.op == "placeholder":
        return _Geo((1.0, 1.0), (1.0, 1.0), (0.0, 0.0), shape[-2:]) if shape and len(
            shape) == 4 else None
    if shape is None or len(shape) != 4:
        return None
    spatial = [geo.get(a) for a in node.all_input_nodes if _spatial(a)]
    if not spatial or any(g is None for g in spatial):
        return None  # fed by a non-spatial tensor with a grid (a global gate): unknown
    kind, params = _window(node, modules)
    if kind is not None:
        return _through_window(spatial[0], params, shape[-2:])
    if kind is None and params == "pad":
        return _through_pad(spatial[0], node, modules, shape[-2:])
    if _pointwise(node, modules) and _only_grid_inputs(node):
        return _union(spatial, shape[-2:])
    return None


def _spatial(node: fx.Node) -> bool:
    if node.op == "get_attr":  # a parameter (a convolution's weight), not the image
        return False
    s = _shape(node)
    return s is not None and len(s) == 4


def _only_grid_inputs(node: fx.Node) -> bool:
    """Every tensor input has the output's grid: a 1x1 gate computed from the whole image
    (squeeze-and-excitation) would make every unit see everything."""
    grid = _shape(node)[-2:]
    return all(a.op == "get_attr" or _shape(a) is None or len(_shape(a)) < 2
               or _shape(a)[-2:] == grid for a in node.all_input_nodes)


def _pointwise(node: fx.Node, modules: dict) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], POINTWISE_MODULES)
    if node.op == "call_function":
        if node.target is torch.cat:
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
            return dim in (1, -3)
        return node.target in POINTWISE_FUNCTIONS
    return node.op == "call_method" and node.target in POINTWISE_METHODS


def _window(node: fx.Node, modules: dict):
    """(kind, (kernel, stride, padding, dilation)) for a convolution or pooling window;
    (None, 'pad') for explicit padding; (None, None) otherwise."""
    if node.op == "call_module":
        m = modules[node.target]
        if isinstance(m, nn.Conv2d):
            return "conv", _conv_params(m.kernel_size, m.stride, m.padding, m.dilation)
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            dilation = getattr(m, "dilation", 1)
            return "pool", _conv_params(m.kernel_size, m.stride or m.kernel_size, m.padding,
                                        dilation)
        if isinstance(m, (nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d,
                          nn.ReplicationPad2d)):
            return None, "pad"
        return None, None
    if node.op == "call_function" and node.target in _CONV_FUNCTIONS:
        return _function_window(node)
    if node.op == "call_function" and node.target is F.pad:
        return None, "pad"
    return None, None


def _function_window(node: fx.Node):
    a, kw = node.args, node.kwargs
    if _CONV_FUNCTIONS[node.target] == "conv":
        weight = a[1] if len(a) > 1 else kw.get("weight")
        w = _shape(weight)
        if w is None:
            return None, None
        get = lambda i, k, d: a[i] if len(a) > i else kw.get(k, d)  # noqa: E731
        return "conv", _conv_params(tuple(w[-2:]), get(3, "stride", 1), get(4, "padding", 0),
                                    get(5, "dilation", 1))
    get = lambda i, k, d: a[i] if len(a) > i else kw.get(k, d)  # noqa: E731
    kernel = get(1, "kernel_size", None)
    stride = get(2, "stride", None) or kernel
    return "pool", _conv_params(kernel, stride, get(3, "padding", 0),
                                get(4, "dilation", 1) if node.target is F.max_pool2d else 1)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _conv_params(kernel, stride, padding, dilation):
    k, s, d = _pair(kernel), _pair(stride), _pair(dilation)
    if isinstance(padding, str):  # 'same' pads (k-1)*d in all, the smaller half first
        p = tuple(d[i] * (k[i] - 1) // 2 if padding == "same" else 0 for i in range(2))
    else:
        p = _pair(padding)
    return k, s, p, d


def _through_window(g: _Geo, params, grid) -> _Geo:
    k, s, p, d = params
    size, jump, start = [], [], []
    for i in range(2):
        reach = d[i] * (k[i] - 1)
        size.append(g.size[i] + reach * g.jump[i])
        start.append(g.start[i] + (reach / 2 - p[i]) * g.jump[i])
        jump.append(g.jump[i] * s[i])
    return _Geo(tuple(size), tuple(jump), tuple(start), tuple(grid))


def _through_pad(g: _Geo, node: fx.Node, modules: dict, grid) -> _Geo | None:
    if node.op == "call_module":
        pad = modules[node.target].padding
    else:
        pad = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad")
    if not isinstance(pad, (tuple, list)) or len(pad) not in (2, 4):
        return None
    left, top = int(pad[0]), int(pad[2]) if len(pad) == 4 else 0
    return _Geo(g.size, g.jump, (g.start[0] - top * g.jump[0], g.start[1] - left * g.jump[1]),
                tuple(grid))


def _union(geos: list[_Geo], grid) -> _Geo | None:
    """Element-wise combination: each unit sees what any input's unit at its place sees."""
    if any(g.jump != geos[0].jump or g.grid != tuple(grid) for g in geos):
        return None
    size, start = [], []
    for i in range(2):
        lo = min(g.start[i] - (g.size[i] - 1) / 2 for g in geos)
        hi = max(g.start[i] + (g.size[i] - 1) / 2 for g in geos)
        size.append(hi - lo + 1)
        start.append((lo + hi) / 2)
    return _Geo(tuple(size), geos[0].jump, tuple(start), tuple(grid))


def effective_field(model: nn.Module, layer: str, size: int, probes: int = 4) -> Field:
    """The effective field of the layer's centre unit (see the module docstring)."""
    from netscope.vision.core.token_grid import as_grid

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(probes, 3, size, size, generator=gen)
    x = x.to(model_device(model), model_dtype(model))
    x.requires_grad_(True)
    ref = LayerRef.parse(layer)
    try:
        with capture(model, [ref]) as rec, torch.enable_grad():
            model(x)
            grid = as_grid(model, rec[ref], (size, size), layer)
            h, w = grid.shape[-2:]
            (g,) = torch.autograd.grad(grid[:, :, h // 2, w // 2].sum(), x)
    except RuntimeError as exc:
        raise NetscopeError(f"layer {layer}: cannot take the gradient of its units "
                            f"({first_line(exc)}).") from None
    seen = g.abs().sum((0, 1))
    if float(seen.max()) == 0:
        raise NetscopeError(f"layer {layer}: its centre unit does not depend on the input, "
                            f"so it has no receptive field.")
    rows, cols = torch.nonzero(seen >= EFFECTIVE_SHARE * seen.max(), as_tuple=True)
    top, bottom, left, right = (int(rows.min()), int(rows.max()), int(cols.min()),
                                int(cols.max()))
    jump = (size / h, size / w)
    centre = ((top + bottom) / 2, (left + right) / 2)
    start = (centre[0] - (h // 2) * jump[0], centre[1] - (w // 2) * jump[1])
    return Field((bottom - top + 1.0, right - left + 1.0), jump, start, "effective")
