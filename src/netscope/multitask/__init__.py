"""The multi-task half: model families (one estimator per file, scikit-learn's contract),
the family table, fitting one split, and the comparison of families on the same splits.

The public surface, imported on first use: every estimator, ``load_model``, ``compare``,
``FAMILIES`` and ``Settings``, and the protocols (``protocols.lecture``, ``.standard``)."""

from netscope.lazy import lazy_exports

_EXPORTS = {
    "RidgePerTask": "ridge", "PooledRidge": "ridge", "MeanRegularizedRidge": "ridge",
    "PerTaskMLP": "pertask", "PooledMLP": "pooled", "SharedTrunkMTL": "shared_trunk",
    "TaskGatedMLP": "gated", "MixedEffects": "mixed", "BoostedTrees": "boosted",
    "LearnedTaskCovariance": "task_covariance", "Ensemble": "ensemble",
    "TaskEstimator": "base", "load_model": "base",
    "compare": "comparison", "Comparison": "comparison",
    "FAMILIES": "families", "Settings": "families",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
