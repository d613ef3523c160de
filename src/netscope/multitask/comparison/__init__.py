"""Fitting every family on the same splits, the metrics, and the paired answer."""

from netscope.lazy import lazy_exports

_EXPORTS = {"Comparison": "results", "FamilyResult": "results", "compare": "results"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
