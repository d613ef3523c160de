"""In-place operations rewritten as ordinary ones in a traced graph.

``h += 0.5; h.mul_(2.0)`` in a model's ``forward`` changes ``h`` where it lies; a traced
graph records the call but later nodes still read the node that made ``h``, so code that
rewrites the graph (LRP swaps operations for rule-carrying units, dead-code elimination
drops calls whose result nobody reads) would compute another function. Here each in-place
operation becomes its out-of-place twin, and every later reader of the changed tensor reads
the twin's result: the graph then says what the model computes, with no mutation left.
Covered: ``+= -= *= /=`` (``operator.iadd`` ...), tensor methods ending in ``_`` that have
an out-of-place twin (``add_``, ``mul_``, ``relu_``, ``clamp_`` ...), ``torch.relu_`` and
the like, and functions or modules called with ``inplace=True`` (``F.relu``,
``nn.ReLU(inplace=True)`` ...). A change made through a view (``h[:, 0].add_(1)``) is not
seen; LRP checks its copy's scores against the model's on every call, which catches it.
"""

from __future__ import annotations

import operator

import torch
import torch.fx as fx

_OPERATORS = {operator.iadd: operator.add, operator.isub: operator.sub,
              operator.imul: operator.mul, operator.itruediv: operator.truediv,
              operator.ifloordiv: operator.floordiv, operator.ipow: operator.pow}


def functionalize(gm: fx.GraphModule) -> int:
    """Rewrite ``gm``'s in-place operations (see the module docstring); returns how many."""
    changed, switched = 0, set()
    for node in list(gm.graph.nodes):
        mutated = node.args[0] if node.args else None
        if not isinstance(mutated, fx.Node) or not _out_of_place(gm, node, switched):
            continue
        position = {n: i for i, n in enumerate(gm.graph.nodes)}
        here = position[node]
        for user in list(mutated.users):  # later readers see the changed tensor
            if user is not node and position[user] > here:
                user.replace_input_with(mutated, node)
        changed += 1
    if changed:
        gm.recompile()
    return changed


def _out_of_place(gm: fx.GraphModule, node: fx.Node, switched: set[str]) -> bool:
    """Turn ``node`` into its out-of-place twin; False when it is not in place.
    ``switched``: the modules already turned out of place (a module may be called at
    several places, each of them in place)."""
    if node.op == "call_function":
        if node.target in _OPERATORS:
            node.target = _OPERATORS[node.target]
            return True
        name = getattr(node.target, "__name__", "")
        if name.endswith("_") and not name.startswith("_") and hasattr(torch, name[:-1]) \
                and getattr(torch, name, None) is node.target:
            node.target = getattr(torch, name[:-1])
            return True
        if node.kwargs.get("inplace") is True:
            node.kwargs = {**node.kwargs, "inplace": False}
            return True
        return False
    if node.op == "call_method":
        name = str(node.target)
        if name.endswith("_") and not name.startswith("_") and name != "requires_grad_" \
                and hasattr(torch.Tensor, name[:-1]):
            if callable(getattr(torch, name[:-1], None)):  # the function form, which
                node.op, node.target = "call_function", getattr(torch, name[:-1])  # LRP reads
            else:
                node.target = name[:-1]
            return True
        return False
    if node.op == "call_module":
        module = gm.get_submodule(node.target)
        if getattr(module, "inplace", False) is True or node.target in switched:
            module.inplace = False
            switched.add(node.target)
            return True
    return False
