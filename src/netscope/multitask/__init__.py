"""The multi-task half, by job: ``protocols`` (splits, scaling, missing values),
``linear`` (ridge, mixed models, MTRL), ``trees``, ``networks``, ``ensemble``, the family
registry (``families``), target kinds (``targets``) and ``comparison``.

The public surface, imported on first use: every estimator, ``load_model``, ``compare``,
``FAMILIES`` and ``Settings``, several targets (``compare_targets``, ``mmoe_synthetic``),
the balancing strategies (``BALANCINGS``, ``Balancer``), and the protocols
(``protocols.lecture``, ``.standard``)."""

from netscope.lazy import lazy_exports

_EXPORTS = {
    "RidgePerTask": "linear.ridge", "PooledRidge": "linear.ridge",
    "MeanRegularizedRidge": "linear.ridge", "PerTaskMLP": "networks.pertask",
    "PooledMLP": "networks.pooled", "SharedTrunkMTL": "networks.shared_trunk",
    "TaskGatedMLP": "networks.gated", "MixedEffects": "linear.mixed",
    "BoostedTrees": "trees.boosted", "LearnedTaskCovariance": "linear.task_covariance",
    "MixedBoosting": "trees.mixed_boosting", "Ensemble": "ensemble",
    "OneVsRest": "one_vs_rest", "JointNetwork": "networks.joint",
    "compare_targets": "several.compare", "TargetsComparison": "several.compare",
    "mmoe_synthetic": "several.synthetic", "Balancer": "balancing.balancer",
    "BALANCINGS": "balancing.registry",
    "TaskEstimator": "base", "load_model": "base",
    "compare": "comparison.results", "Comparison": "comparison.results",
    "FAMILIES": "families", "Settings": "settings",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
