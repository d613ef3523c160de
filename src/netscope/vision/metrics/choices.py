"""What ``vision evaluate`` may be asked for (method and metric names), checked without
PyTorch, so a typo on the command line fails in a fraction of a second."""

from __future__ import annotations

from collections.abc import Sequence

from netscope.errors import NetscopeError
from netscope.vision.methods.registry import METHODS, names

METRICS = ("deletion", "insertion", "road", "confidence")
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


def resolve_metrics(names: Sequence[str] | str) -> tuple[tuple[str, ...], bool]:
    """('all' or names of METRICS and 'sanity') -> (metrics, whether to run the sanity check)."""
    names = list(METRICS) + ["sanity"] if names == "all" or list(names) == ["all"] \
        else list(names)
    unknown = [n for n in names if n not in (*METRICS, "sanity")]
    if unknown or not names:
        raise NetscopeError(f"unknown metric {unknown[0] if unknown else ''!r}; choose from "
                            f"{', '.join(METRICS)}, sanity, or 'all'.")
    return tuple(m for m in METRICS if m in names), "sanity" in names
