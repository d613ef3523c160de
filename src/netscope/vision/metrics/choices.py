"""What ``vision evaluate`` may be asked for (method and metric names), checked without
PyTorch, so a typo on the command line fails in a fraction of a second."""

from __future__ import annotations

from collections.abc import Sequence

from netscope.errors import NetscopeError
from netscope.vision.methods.registry import METHODS, names
from netscope.vision.metrics.registry import METRICS as REGISTERED


def default_metrics() -> tuple[str, ...]:
    """What 'all' means: every registered metric but the opt-in ones."""
    return tuple(n for n, m in REGISTERED.items() if m.default)

# what commands that run many methods or images (`vision evaluate`, `vision explain`) give a
# method where its own default would be slow: Score-CAM and Ablation-CAM on the 128 channels
# of largest mean activation (a forward pass each), not all of them
BULK_DEFAULTS = {"top_k": 128}


def wants_all(methods: Sequence[str] | str) -> bool:
    return methods == "all" or list(methods) == ["all"]


def resolve_methods(chosen: Sequence[str] | str) -> list[str]:
    """'all', or a list of method names (checked, in the given order)."""
    if wants_all(chosen):
        return list(names("all"))
    chosen = list(chosen)
    unknown = [n for n in chosen if n not in METHODS]
    if unknown:
        left_out = [n for n in METHODS if n not in names("all")]
        raise NetscopeError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)} "
                            f"or 'all' (every method but {', '.join(left_out)}).")
    if not chosen:
        raise NetscopeError("give at least one method, or 'all'.")
    return list(dict.fromkeys(chosen))


def resolve_metrics(chosen: Sequence[str] | str) -> tuple[str, ...]:
    """'all' (every default metric) or names of registered metrics, in the registry's
    order."""
    chosen = list(default_metrics()) if chosen == "all" or list(chosen) == ["all"] else list(chosen)
    unknown = [n for n in chosen if n not in REGISTERED]
    if unknown or not chosen:
        raise NetscopeError(f"unknown metric {unknown[0] if unknown else ''!r}; choose from "
                            f"{', '.join(REGISTERED)}, or 'all'.")
    return tuple(n for n in REGISTERED if n in chosen)
