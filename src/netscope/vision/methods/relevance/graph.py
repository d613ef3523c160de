"""The model as LRP walks it: a traced copy (torch.fx) with batch norm merged into the
convolution before it, where every node that changes relevance is replaced by a unit whose
backward pass applies its rule.

Nodes whose plain gradient already hands relevance down unchanged (max pooling, padding,
flatten, reshape, concatenation, indexing, dropout in eval mode) stay as they are. A
residual sum of two branches splits the relevance in proportion to each branch's share
(Norm). Anything else is refused with the node's name, so no map is silently wrong.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.capture import SCRIPTED
from netscope.vision.core.fastpath import traced_copy
from netscope.vision.methods.relevance.attention import (
    MHA,
    Attention,
    Product,
    SoftmaxTaylor,
    layer_norm,
    layer_norm_over,
)
from netscope.vision.methods.relevance.composites import Composite
from netscope.vision.methods.relevance.exported import PLAIN_OPS, exported_copy
from netscope.vision.methods.relevance.rules import Layer
from netscope.vision.methods.relevance.units import (
    Probe,
    Sum,
    Unit,
    conv_transpose,
    dense_transpose,
)

ACTIVATION_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.GELU, nn.Sigmoid,
                      nn.Tanh, nn.Softplus, nn.Hardswish, nn.Hardtanh, nn.Mish, nn.PReLU)
ACTIVATION_FUNCTIONS = {torch.relu, F.relu, F.relu6, F.leaky_relu, F.elu, F.silu, F.gelu,
                        torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.hardtanh, F.hardswish,
                        F.softplus, F.mish}
ACTIVATION_METHODS = {"relu", "relu_", "sigmoid", "tanh", "clamp", "clamp_"}
POOL_MODULES = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
                nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
POOL_FUNCTIONS = {F.avg_pool2d, F.adaptive_avg_pool2d, F.avg_pool1d, F.adaptive_avg_pool1d,
                  torch.mean}
SUMS = {operator.add, operator.iadd, torch.add}
SCALINGS = {operator.mul, operator.truediv, torch.mul, torch.div}
SOFTMAXES = {F.softmax, torch.softmax}
MATMULS = {torch.matmul, operator.matmul, torch.bmm}
ATTENTION_STEPS = ("weighted", "bilinear", "softmax")
PLAIN_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool2d, nn.Flatten,
                 nn.Unflatten, nn.Dropout, nn.Dropout2d, nn.Identity, nn.ZeroPad2d,
                 nn.ConstantPad2d)
PLAIN_FUNCTIONS = {torch.flatten, torch.reshape, torch.cat, torch.concat, operator.getitem,
                   getattr, torch.permute, torch.transpose, torch.squeeze, torch.unsqueeze,
                   F.max_pool2d, F.max_pool1d, F.dropout, F.pad, torch.chunk, torch.split,
                   torch.select, *PLAIN_OPS}
PLAIN_METHODS = {"view", "reshape", "flatten", "permute", "transpose", "contiguous", "size",
                 "squeeze", "unsqueeze", "dim", "chunk", "split"}
CONV_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def node_name(node: fx.Node) -> str:
    """The dotted name of the module a node belongs to (the user's names), else the node's."""
    stack = node.meta.get("nn_module_stack") or {}
    if stack:  # the innermost module it runs in (kept when a node is replaced)
        return next(reversed(stack))
    return str(node.target) if node.op == "call_module" else node.name


def add_probes(gm: fx.GraphModule, layers: dict[str, tuple[int, ...] | None]
               ) -> dict[str, Probe]:
    """A Probe after each named layer's output (the last node inside that module)."""
    probes = {}
    for name, channels in layers.items():
        inside = [n for n in gm.graph.nodes if n.op not in ("placeholder", "output")
                  and (node_name(n) == name or node_name(n).startswith(name + "."))]
        if not inside:
            raise NetscopeError(f"no layer {name!r} in the relevance graph (a batch norm is "
                                f"merged into the convolution before it: name that one).")
        probe = Probe(name, None if channels is None else tuple(channels))
        target = f"_lrp_probe_{len(probes)}"
        gm.add_submodule(target, probe)
        with gm.graph.inserting_after(inside[-1]):
            new = gm.graph.call_module(target, (inside[-1],))
        new.meta = dict(inside[-1].meta)
        inside[-1].replace_all_uses_with(new, delete_user_cb=lambda user, p=new: user is not p)
        probes[name] = probe
    gm.recompile()
    return probes


def relevance_graph(model: nn.Module, composite: Composite,
                    example: torch.Tensor) -> fx.GraphModule:
    """A copy of ``model`` whose backward pass propagates relevance (see the docstring);
    ``example`` (one input) tells which nodes carry tensors that depend on the input."""
    if isinstance(model, torch.jit.ScriptModule):
        raise NetscopeError(SCRIPTED)
    gm = traced_copy(model)
    if gm is None:  # Hugging Face models and others fx cannot trace: torch.export
        gm = exported_copy(model, example)
    if gm is None:
        raise NetscopeError("LRP needs a model torch.fx or torch.export can capture (no "
                            "data-dependent control flow in forward); this one cannot be. "
                            "Use Grad-CAM or Integrated Gradients, which work on any model.")
    carries = _relevance_nodes(gm, example)
    first = True
    for node in list(gm.graph.nodes):
        if node not in carries:
            continue
        forced = _attnlrp_role(node, carries) if composite.attention == "attnlrp" else None
        try:
            role, layer, op = forced or _classify(gm, node, carries)
        except NetscopeError:
            own = composite.own_rule(node_name(node))
            if own is None:
                raise
            role, layer, op = "custom", _as_layer(gm, node), None
        if role is None:
            continue
        if role in ("conv", "dense"):
            rule = composite.choose(role, layer.name, first)
            first = False
        else:  # the steps of written-out attention take the attention's rule
            rule = composite.choose("attention" if role in ATTENTION_STEPS else role,
                                    layer.name, False)
        if role == "sum":
            unit: nn.Module = Sum(layer.name, getattr(rule, "epsilon", 0.0))
            args = node.args[:2]
        elif role == "attention":
            scale, causal, mask = op
            unit = Attention(layer.name, getattr(rule, "epsilon", 0.0), (scale, causal),
                             composite.attention)
            args = (*node.args[:3], mask)
        elif role == "weighted":
            unit, args = Product(layer.name, getattr(rule, "epsilon", 0.0)), node.args[:2]
        elif role == "bilinear":
            unit = Product(layer.name, getattr(rule, "epsilon", 0.0), uniform=True)
            args = node.args[:2]
        elif role == "softmax":
            unit, args = SoftmaxTaylor(layer.name, 0.0), node.args[:1]
        elif role == "mha":
            unit = MHA(op, composite.choose("dense", f"{layer.name}.in_proj", False),
                        composite.choose("dense", f"{layer.name}.out_proj", False),
                        getattr(composite.choose("attention", layer.name, False), "epsilon", 0.0),
                        composite.attention)
            args = node.args[:3]
            _check_mha_call(node, layer.name)
        else:
            if rule.needs_params and layer.weight is None:
                raise NetscopeError(f"rule {rule!r} needs a layer with weights; {layer.name} "
                                    f"has none. Give it Epsilon(), Norm() or Pass().")
            if role == "conv":
                layer, args = _with_padding(gm, node, layer)
            else:
                args = node.args[:1]
            unit = Unit(layer, rule, op)
        carries.add(_swap(gm, node, unit, args))  # later nodes read the new one
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def _as_layer(gm: fx.GraphModule, node: fx.Node) -> Layer:
    """A node the user gave a rule for, as a parameter-free layer of its first input."""
    rest, kw = node.args[1:], dict(node.kwargs)
    if node.op == "call_module":
        call = gm.get_submodule(node.target)
    elif node.op == "call_method":
        def call(x, *a, m=node.target, **k):
            return getattr(x, m)(*a, **k)
    else:
        call = node.target
    return Layer(node_name(node), lambda x, w, b: call(x, *rest, **kw))


def _relevance_nodes(gm: fx.GraphModule, example: torch.Tensor) -> set[fx.Node]:
    """Nodes whose value is a tensor computed from the input: the only ones relevance
    flows through (shape arithmetic, parameter reshaping and boolean masks are left
    alone: a mask computed from the image is a constant to relevance)."""
    from torch.fx.passes.shape_prop import ShapeProp

    with torch.no_grad():
        ShapeProp(gm).propagate(example)
    scalar = (int, float, bool, torch.Size, torch.dtype, torch.device, type(None))
    found: set[fx.Node] = set()
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            found.add(node)
        elif node.op != "output" and any(a in found for a in node.all_input_nodes) and \
                node.meta.get("type") not in scalar and not _boolean(node):
            found.add(node)
    return found


def _boolean(node: fx.Node) -> bool:
    """A comparison's result (a mask): relevance cannot flow through it."""
    return getattr(node.meta.get("tensor_meta"), "dtype", None) is torch.bool


def _with_padding(gm: fx.GraphModule, node: fx.Node, layer: Layer) -> tuple[Layer, tuple]:
    """A convolution whose input is zero-padded by a module of its own (TensorFlow-style
    "same" padding) takes the padding into its layer: rules that replace the input (flat,
    w-square, z-box) then see the border as the zeros it is, not as pixels."""
    src = node.args[0]
    if not (isinstance(src, fx.Node) and src.op == "call_module" and len(src.users) == 1
            and isinstance(gm.get_submodule(src.target), nn.ZeroPad2d)):
        return layer, node.args[:1]
    pad, conv = gm.get_submodule(src.target), layer.fn
    padded = Layer(layer.name, lambda x, w, b: conv(pad(x), w, b), layer.weight, layer.bias)
    return padded, src.args[:1]


def _swap(gm: fx.GraphModule, node: fx.Node, unit: nn.Module, args) -> fx.Node:
    name = f"_lrp_{len(list(gm.named_children()))}"
    gm.add_submodule(name, unit)
    with gm.graph.inserting_before(node):
        new = gm.graph.call_module(name, tuple(args))
    new.meta = dict(node.meta)
    node.replace_all_uses_with(new)
    gm.graph.erase_node(node)
    return new


def _classify(gm: fx.GraphModule, node: fx.Node, carries: set[fx.Node]):
    """(role, Layer, op) for a node LRP must replace, (None, None, None) for one whose
    gradient already passes relevance, or an error for one it has no rule for."""
    name = node_name(node)
    nothing = (None, None, None)
    if node.op in ("placeholder", "output", "get_attr"):
        return nothing
    if node.op == "call_module":
        return _classify_module(gm.get_submodule(node.target), name, node)
    if node.op == "call_function":
        return _classify_function(gm, node, name, carries)
    if node.op == "call_method":
        if node.target in PLAIN_METHODS:
            return nothing
        if node.target in ACTIVATION_METHODS:
            method = node.target.rstrip("_")
            rest, kw = node.args[1:], dict(node.kwargs)
            return "activation", Layer(name, _ignore_params), \
                (lambda x, m=method, a=rest, k=kw: getattr(x, m)(*a, **k))
        if node.target == "mean":
            rest, kw = node.args[1:], dict(node.kwargs)
            return "pool", Layer(name, lambda x, w, b, a=rest, k=kw: x.mean(*a, **k)), None
        if node.target in ("add", "add_") and _two_tensors(node):
            return "sum", Layer(name, _ignore_params), None
        if node.target == "softmax":
            return None, None, None
    raise _unsupported(node, name)


def _classify_module(mod: nn.Module, name: str, node: fx.Node):
    if isinstance(mod, CONV_MODULES):
        plain = type(mod) is nn.Conv2d and mod.padding_mode == "zeros" and \
            not isinstance(mod.padding, str)
        back = conv_transpose(F.conv2d, mod.stride, mod.padding, mod.dilation, mod.groups) \
            if plain else None
        return "conv", Layer(name, lambda x, w, b, m=mod: m._conv_forward(x, w, b),
                             mod.weight, mod.bias, back), None
    if isinstance(mod, nn.Linear):
        return "dense", Layer(name, F.linear, mod.weight, mod.bias, dense_transpose), None
    if isinstance(mod, ACTIVATION_MODULES):
        return "activation", Layer(name, _ignore_params), _fresh(mod)
    if isinstance(mod, nn.LayerNorm):
        return "layernorm", Layer(name, layer_norm(mod), mod.weight, mod.bias), None
    if isinstance(mod, nn.MultiheadAttention):
        return "mha", Layer(name, _ignore_params), mod
    if isinstance(mod, nn.modules.batchnorm._BatchNorm):
        return "batchnorm", Layer(name, _ignore_params), mod
    if isinstance(mod, POOL_MODULES):
        return "pool", Layer(name, lambda x, w, b, m=mod: m(x)), None
    if isinstance(mod, PLAIN_MODULES):
        return None, None, None
    raise _unsupported(node, name, mod)


def _classify_function(gm: fx.GraphModule, node: fx.Node, name: str,
                       carries: set[fx.Node]):
    fn = node.target
    if fn in (F.conv2d, torch.conv2d, F.conv1d, F.conv3d):
        x, w, b, *rest = _filled(node, 7)
        return "conv", Layer(name, lambda x, w, b, f=fn, r=tuple(rest): f(x, w, b, *r),
                             _attr(gm, w), _attr(gm, b), conv_transpose(fn, *rest)), None
    if fn is F.linear:
        x, w, b = _filled(node, 3)
        return "dense", Layer(name, F.linear, _attr(gm, w), _attr(gm, b), dense_transpose), None
    if fn is F.layer_norm:
        given = {**dict(zip(("input", "normalized_shape", "weight", "bias", "eps"),
                            node.args, strict=False)), **node.kwargs}
        shape, w, b, eps = (given.get(k) for k in ("normalized_shape", "weight", "bias",
                                                     "eps"))
        return "layernorm", Layer(name, layer_norm_over(tuple(shape), 1e-5 if eps is None
                                                         else eps),
                                  _attr(gm, w), _attr(gm, b)), None
    if fn is F.scaled_dot_product_attention:
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale",
                 "enable_gqa")
        kw = {**dict(zip(names, node.args, strict=False)), **node.kwargs}
        mask = kw.get("attn_mask")
        if kw.get("enable_gqa") or (mask is not None and mask in carries) or \
                kw.get("dropout_p", 0.0) not in (0, 0.0):
            raise NetscopeError(f"LRP through attention at {name}: grouped queries, dropout "
                                f"and masks computed from the input are not supported yet.")
        return "attention", Layer(name, _ignore_params), \
            (kw.get("scale"), bool(kw.get("is_causal", False)), mask)
    if fn in ACTIVATION_FUNCTIONS:
        rest, kw = node.args[1:], {k: v for k, v in node.kwargs.items() if k != "inplace"}
        return "activation", Layer(name, _ignore_params), \
            (lambda x, f=fn, a=rest, k=kw: f(x, *a, **k))
    if fn in POOL_FUNCTIONS:
        rest, kw = node.args[1:], dict(node.kwargs)
        return "pool", Layer(name, lambda x, w, b, f=fn, a=rest, k=kw: f(x, *a, **k)), None
    if fn in SUMS and _two_tensors(node):
        return "sum", Layer(name, _ignore_params), None
    if fn in SCALINGS and sum(a in carries for a in node.args[:2]) == 1:
        return "activation", Layer(name, _ignore_params), _scaling(gm, node, carries)
    if fn in SOFTMAXES:  # attention weights: held constant, they receive no relevance
        return None, None, None
    if fn in MATMULS and _two_tensors(node):
        a, b = node.args[:2]
        if _from_softmax(a):  # weights @ values
            return "weighted", Layer(name, _ignore_params), "left"
        if _feeds_softmax(node):  # q @ k^T: on the weights' side, no relevance reaches it
            return None, None, None
    if fn in SUMS or fn in PLAIN_FUNCTIONS:  # x + a constant: relevance passes as it is
        return None, None, None
    raise _unsupported(node, name)


def _scaling(gm: fx.GraphModule, node: fx.Node, carries: set[fx.Node]) -> Callable:
    """x * c or x / c by a constant (a number or a parameter, as timm's layer scale): the
    forward as it is, relevance passing unchanged (each output owes all to its input)."""
    a, b = node.args[:2]
    fn, left = node.target, a in carries
    other = _attr(gm, b if left else a)
    return (lambda x: fn(x, other)) if left else (lambda x: fn(other, x))


def _attnlrp_role(node: fx.Node, carries: set[fx.Node]):
    """Written-out attention under AttnLRP: a product of two tensors that both carry
    relevance is bilinear (weights @ values, q @ k^T: the uniform rule), a softmax gets its
    Taylor rule, a mask added to the logits passes relevance on whole (as the fused step
    applies it); None for every other node (classified as usual)."""
    name = node_name(node)
    if node.target in SOFTMAXES or (node.op == "call_method" and node.target == "softmax"):
        dims = [a for a in (*node.args[1:2], node.kwargs.get("dim")) if a is not None]
        if dims and dims[0] != -1 and not _last_axis(node, dims[0]):
            raise NetscopeError(f"AttnLRP at {name}: a softmax over axis {dims[0]} is not "
                                f"attention over the last axis; use attention='ah'.")
        return "softmax", Layer(name, _ignore_params), None
    if node.target in MATMULS and all(a in carries for a in node.args[:2]):
        return "bilinear", Layer(name, _ignore_params), None
    if node.target in SUMS and sum(a in carries for a in node.args[:2]) == 1 and \
            _feeds_softmax(node):  # an additive mask on the logits: all relevance stays
        return None, None, None
    return None


def _last_axis(node: fx.Node, dim: int) -> bool:
    shape = getattr(node.meta.get("tensor_meta"), "shape", None)
    return shape is not None and dim == len(shape) - 1


def _from_softmax(node) -> bool:
    """Whether a node is attention weights: a softmax, possibly through dropout, a dtype
    cast or a copy (Hugging Face's eager attention casts after its softmax)."""
    while isinstance(node, fx.Node):
        if node.target in SOFTMAXES or (node.op == "call_method" and node.target == "softmax"):
            return True
        if node.target is F.dropout or node.target in PLAIN_OPS or \
                (node.op == "call_method" and node.target in ("to", "contiguous")) or \
                (node.op == "call_module" and "dropout" in str(node.target).lower()):
            node = node.args[0]
            continue
        return False
    return False


def _feeds_softmax(node: fx.Node, depth: int = 4) -> bool:
    """Whether a node's value reaches a softmax through a few elementwise steps (the scaled
    logits q k^T of attention)."""
    frontier = [node]
    for _ in range(depth):
        nxt = []
        for n in frontier:
            for user in n.users:
                if user.target in SOFTMAXES or (user.op == "call_method" and
                                                user.target == "softmax"):
                    return True
                nxt.append(user)
        frontier = nxt
    return False


def _check_mha_call(node: fx.Node, name: str) -> None:
    q, k, v = (list(node.args) + [None, None, None])[:3]
    masks = [k for k in ("attn_mask", "key_padding_mask") if node.kwargs.get(k) is not None]
    if not (q is k is v) or masks or node.kwargs.get("is_causal"):
        raise NetscopeError(f"LRP through nn.MultiheadAttention at {name}: only self-attention "
                            f"without masks is supported.")


def _ignore_params(x, w=None, b=None):
    return x


def _fresh(mod: nn.Module) -> Callable:
    """The activation as a function that never works in place (relevance needs its input)."""
    if getattr(mod, "inplace", False):
        import copy

        mod = copy.copy(mod)
        mod.inplace = False
    return mod


def _two_tensors(node: fx.Node) -> bool:
    args = node.args[:2]
    return len(args) == 2 and all(isinstance(a, fx.Node) for a in args) and \
        not node.kwargs.get("alpha")


def _filled(node: fx.Node, n: int) -> list:
    """The first n positional arguments, keywords filled in (conv2d's and linear's)."""
    names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
    defaults = [None, None, None, 1, 0, 1, 1]
    values = (list(node.args) + defaults[len(node.args):])[:n]
    for k, v in node.kwargs.items():
        values[names.index(k)] = v
    return values


def _attr(gm: fx.GraphModule, value):
    """A parameter the graph reads (a get_attr node), or the constant given."""
    if isinstance(value, fx.Node):
        if value.op != "get_attr":
            raise NetscopeError(f"LRP needs this layer's weights to be parameters of the "
                                f"model; {value.name} is computed in forward.")
        obj = gm
        for part in value.target.split("."):
            obj = getattr(obj, part)
        return obj
    return value


def _unsupported(node: fx.Node, name: str, mod: nn.Module | None = None) -> NetscopeError:
    what = type(mod).__name__ if mod is not None else getattr(node.target, "__name__",
                                                                  str(node.target))
    if mod is not None and (any(True for _ in mod.children())
                            or any(True for _ in mod.parameters())):
        # a whole block with weights inside: one rule for it would break conservation
        return NetscopeError(
            f"LRP has no rule for {what} at {name}, a module with its own layers that the "
            f"trace cannot see into; write its forward with operations LRP knows (nn.Linear, "
            f"nn.Conv2d, nn.MultiheadAttention, F.scaled_dot_product_attention, norms, "
            f"activations, sums), or use Grad-CAM or Integrated Gradients, which work on any "
            f"model. A single rule for the whole block would not conserve relevance.")
    return NetscopeError(
        f"LRP has no rule for {what} at {name}; give it one by name: "
        f"lrp(..., rules={{{name!r}: Pass()}}) if it is elementwise (each output owes all to "
        f"its own input), Epsilon() if it is linear (netscope.vision.methods.relevance.rules).")
