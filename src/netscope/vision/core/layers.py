"""Layers by dotted name, with the closest names in the error when one is misspelt."""

from __future__ import annotations

import difflib

from torch import nn

from netscope.errors import NetscopeError


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule at a dotted path, or an error listing the closest names."""
    modules = dict(model.named_modules())
    if name in modules and name != "":
        return modules[name]
    close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.5)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    raise NetscopeError(
        f"no layer named {name!r} in the model.{hint} "
        f"Run `netscope vision layers` to list every layer."
    )
