"""A faster stand-in for "the model up to one layer", used by gradient ascent.

Ascent runs the same truncated network hundreds of times. With torch.fx the model is traced
once, cut after the layer, and simplified for evaluation: each eval-mode BatchNorm is folded
into the convolution before it, and a symmetric zero padding module is folded into the
convolution's own padding. The result computes the same function (up to float rounding) with
fewer, cheaper operations. Models that cannot be traced, or layers that cannot be located in
the trace, return None and the caller keeps the hook-based path.
"""

from __future__ import annotations

import contextlib
import copy
import weakref

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.functionalize import functionalize
from netscope.vision.core.plain_transformer import write_out_transformers
from netscope.vision.core.targets import reading_key, select_output

_CACHE: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()
_KEEP = 4  # traced layers remembered per model


def fingerprint(model: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is replaced or modified in place."""
    return tuple((t.data_ptr(), t._version) for t in (*model.parameters(), *model.buffers()))


def truncated(model: nn.Module, layer: str | None) -> fx.GraphModule | None:
    """The model from input to the output of ``layer`` (a module called once; None: the
    model's own output), simplified; None when the model cannot be traced. The user's model
    is never modified: a copy is.
    Results are remembered per model until its weights change (training invalidates them)."""
    try:
        per_model = _CACHE.setdefault(model, {})
    except TypeError:  # not weak-referenceable
        per_model = {}
    key = (layer, fingerprint(model), repr(reading_key(model)))
    if key not in per_model:
        if len(per_model) >= _KEEP:
            per_model.pop(next(iter(per_model)))
        per_model[key] = _build(model, layer)
    return per_model[key]


def traced_copy(model: nn.Module) -> fx.GraphModule | None:
    """A fresh simplified copy of the whole model (batch norm folded), for code that rewrites
    the graph (LRP); None when the model cannot be traced. Never cached: it is changed."""
    return _build(model, None)


def _build(model: nn.Module, layer: str | None) -> fx.GraphModule | None:
    try:
        twin = copy.deepcopy(model).eval()
        write_out_transformers(twin)  # nn.TransformerEncoder as the operations it is
        with _len_as_first_dimension():
            gm = fx.symbolic_trace(twin)
    except Exception:  # data-dependent control flow, non-copyable attributes and the like
        return None
    for module in gm.modules():  # hooks the user had registered do not belong in here
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
    functionalize(gm)  # in-place operations as ordinary ones: the graph can be rewritten
    if layer is None:
        _read_output(gm, reading_key(model))
    if layer is not None:
        inside = [n for n in gm.graph.nodes if layer in n.meta.get("nn_module_stack", {})]
        if not inside:
            return None
        gm.graph.erase_node(next(n for n in gm.graph.nodes if n.op == "output"))
        gm.graph.output(inside[-1])
    gm.graph.eliminate_dead_code()
    _fold_padding(gm)
    _fold_batchnorm(gm)
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()
    for p in gm.parameters():
        p.requires_grad_(False)
    return gm


def _read_output(gm: fx.GraphModule, key) -> None:
    """The copy returns the part of the model's output that the model is read for (its
    ``--output-key``, the logits of a dict holding them), as the model's reading hook, which
    the copy does not keep, made the model return."""

    out = next(n for n in gm.graph.nodes if n.op == "output")
    value = out.args[0]
    if isinstance(value, (dict, tuple, list)):
        try:
            chosen = select_output(value, key)
        except NetscopeError:  # no part is clear without a key: the whole output stays
            return
        if isinstance(chosen, fx.Node):
            out.args = (chosen,)


@contextlib.contextmanager
def _len_as_first_dimension():
    """``len(x)`` of a traced tensor is its first dimension (``cls.expand(len(x), -1, -1)``
    in a ViT's forward is no control flow), as ``x.shape[0]`` already traces."""
    import builtins

    plain = builtins.len

    def traced_len(obj):
        return obj.size(0) if isinstance(obj, fx.Proxy) else plain(obj)

    builtins.len = traced_len
    try:
        yield
    finally:
        builtins.len = plain


def _conv_args(node: fx.Node, gm: fx.GraphModule):
    """(input, weight, bias, stride, padding, dilation, groups) of a conv node, or None."""
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        if type(mod) is not nn.Conv2d or mod.padding_mode != "zeros":
            return None
        return (node.args[0], mod.weight, mod.bias, mod.stride, mod.padding, mod.dilation,
                mod.groups)
    if node.op == "call_function" and node.target in (F.conv2d, torch.conv2d):
        names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
        defaults = (None, None, None, (1, 1), (0, 0), (1, 1), 1)
        vals = list(defaults)
        for i, a in enumerate(node.args):
            vals[i] = a
        for k, v in node.kwargs.items():
            vals[names.index(k)] = v
        for i in (1, 2):
            if isinstance(vals[i], fx.Node):
                if vals[i].op != "get_attr":
                    return None
                vals[i] = _attr(gm, vals[i].target)
        if isinstance(vals[4], str):
            return None
        return tuple(vals)
    return None


def _attr(gm: fx.GraphModule, target: str) -> torch.Tensor:
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _replace_conv(gm, node, x, weight, bias, stride, padding, dilation, groups) -> None:
    """Swap ``node`` for a conv with new parameters (registered on the graph module)."""
    name = f"_fast_conv_{len([n for n in gm.graph.nodes if n.op == 'get_attr'])}"
    gm.register_parameter(name + "_w", nn.Parameter(weight.detach().clone(), False))
    has_bias = bias is not None
    if has_bias:
        gm.register_parameter(name + "_b", nn.Parameter(bias.detach().clone(), False))
    with gm.graph.inserting_before(node):
        w = gm.graph.get_attr(name + "_w")
        b = gm.graph.get_attr(name + "_b") if has_bias else None
        new = gm.graph.call_function(F.conv2d, (x, w, b, _pair(stride), _pair(padding),
                                                _pair(dilation), groups))
    new.meta = dict(node.meta)
    node.replace_all_uses_with(new)
    gm.graph.erase_node(node)


def _fold_padding(gm: fx.GraphModule) -> None:
    for node in list(gm.graph.nodes):
        conv = _conv_args(node, gm)
        if conv is None or _pair(conv[4]) != (0, 0):
            continue
        pad = conv[0]
        if not (isinstance(pad, fx.Node) and pad.op == "call_module" and len(pad.users) == 1):
            continue
        mod = gm.get_submodule(pad.target)
        if type(mod) is not nn.ZeroPad2d:
            continue
        left, right, top, bottom = mod.padding
        if left != right or top != bottom:
            continue
        _replace_conv(gm, node, pad.args[0], conv[1], conv[2], conv[3], (top, left), conv[5],
                      conv[6])


def _fold_batchnorm(gm: fx.GraphModule) -> None:
    for node in list(gm.graph.nodes):
        if node.op != "call_module":
            continue
        bn = gm.get_submodule(node.target)
        if type(bn) is not nn.BatchNorm2d or bn.training or not bn.track_running_stats:
            continue
        src = node.args[0]
        if not isinstance(src, fx.Node) or len(src.users) != 1:
            continue
        conv = _conv_args(src, gm)
        if conv is None:
            continue
        x, weight, bias, stride, padding, dilation, groups = conv
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        new_w = weight * scale.view(-1, 1, 1, 1)
        old_b = bias if bias is not None else torch.zeros_like(bn.running_mean)
        new_b = (old_b - bn.running_mean) * scale + bn.bias
        _replace_conv(gm, src, x, new_w, new_b, stride, padding, dilation, groups)
        node.replace_all_uses_with(node.args[0])
        gm.graph.erase_node(node)

