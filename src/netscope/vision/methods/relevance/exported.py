"""A model torch.fx cannot trace (Hugging Face transformers unpack shapes and wrap their
forward) as a graph LRP can rewrite: ``torch.export`` runs it on an example instead and
records the ATen operations, with a free batch size; each operation is then renamed to the
torch function it is (``aten.linear`` -> ``F.linear``...), and each node's module path is
kept as the user's model names it, so rules by layer name and concept relevance work as on a
traced model. Only what the relevance graph understands is renamed; anything else stays an
ATen operation and gets the clear "no rule for" error.
"""

from __future__ import annotations

import copy

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from netscope.vision.core.targets import class_output

aten = torch.ops.aten

# ATen operation -> the torch function with the same arguments
AS_FUNCTION = {
    aten.conv2d.default: F.conv2d, aten.conv1d.default: F.conv1d,
    aten.linear.default: F.linear,
    aten.layer_norm.default: F.layer_norm,
    aten.scaled_dot_product_attention.default: F.scaled_dot_product_attention,
    aten.gelu.default: F.gelu, aten.relu.default: F.relu, aten.silu.default: F.silu,
    aten.tanh.default: torch.tanh, aten.sigmoid.default: torch.sigmoid,
    aten.add.Tensor: torch.add, aten.mul.Tensor: torch.mul, aten.div.Tensor: torch.div,
    aten.matmul.default: torch.matmul, aten.bmm.default: torch.bmm,
    aten.softmax.int: torch.softmax, aten._softmax.default: torch.softmax,
    aten.mean.dim: torch.mean,
    aten.avg_pool2d.default: F.avg_pool2d,
    aten.adaptive_avg_pool2d.default: F.adaptive_avg_pool2d,
    aten.view.default: torch.reshape, aten.reshape.default: torch.reshape,
    aten._unsafe_view.default: torch.reshape,
    aten.transpose.int: torch.transpose, aten.permute.default: torch.permute,
    aten.flatten.using_ints: torch.flatten, aten.cat.default: torch.cat,
    aten.unsqueeze.default: torch.unsqueeze, aten.squeeze.dim: torch.squeeze,
    aten.select.int: torch.select, aten.dropout.default: F.dropout,
}
# kept as they are: they only move or copy values (relevance passes with them)
PLAIN_OPS = {aten.contiguous.default, aten.slice.Tensor, aten.expand.default,
             aten.clone.default, aten.to.dtype, aten.alias.default, aten.detach.default}


class _Call(nn.Module):
    """The user's model with its input as the only argument and its class scores as the
    output (a Hugging Face ModelOutput's ``logits``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return class_output(self.model(x))


def exported_copy(model: nn.Module, example: torch.Tensor) -> fx.GraphModule | None:
    """The model as a graph of torch functions (see the module docstring), or None when
    torch.export cannot capture it either."""
    wrapper = _Call(copy.deepcopy(model).eval())
    batch = torch.export.Dim("batch", min=1)
    sample = example.expand(2, *example.shape[1:]).clone()  # batch 1 would be specialized
    try:
        gm = torch.export.export(wrapper, (sample,), dynamic_shapes=({0: batch},),
                                 strict=False).module()
    except Exception:  # noqa: BLE001 - any capture failure means: no graph for LRP
        return None
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target is aten._assert_tensor_metadata.default:
            gm.graph.erase_node(node)  # export's own dtype checks: the rules change dtypes
            continue
        if node.op == "call_function" and node.target in AS_FUNCTION:
            node.target = AS_FUNCTION[node.target]
            if node.target is F.layer_norm:
                node.args = node.args[:5]  # cudnn_enable is not F.layer_norm's
        stack = node.meta.get("nn_module_stack")
        if stack:
            paths = [path.removeprefix("model.") for path, _ in stack.values()
                     if path.startswith("model.") or path == "model"]
            node.meta["nn_module_stack"] = {p: (p, "") for p in paths if p != "model"}
    gm.graph.eliminate_dead_code()
    gm.recompile()
    for p in gm.parameters():
        p.requires_grad_(False)
    return gm
