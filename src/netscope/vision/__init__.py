"""The CNN half: activations, gradient ascent, attribution maps and their faithfulness, on
any PyTorch classifier (CNNs and vision transformers).

The public surface, imported on first use (``from netscope.vision import grad_cam``):
models (``load_model``, ``sample_image``, ``predict``), every attribution method and
``explain(name, ...)`` for any of them by name, the metrics (``deletion``, ``insertion``,
``road``, ``confidence_change``, ``cascading_randomization``), ``evaluate`` (every method
scored), features (``activations``, ``visualize_filters``, ``visualize_classes``) and
``explain_folder`` (a whole dataset). Sub-packages: ``core`` (hooks, targets, token grids,
layer choice, device), ``models``, ``methods``, ``metrics``, ``features``, ``datasets``,
``live``."""

from netscope.lazy import lazy_exports

_METHODS = ("explain", "grad_cam", "cam", "eigen_cam", "saliency", "score_cam",
            "ablation_cam", "integrated_gradients", "occlusion", "guided_backprop",
            "guided_grad_cam", "attention_rollout", "random_map")
_EXPORTS = {
    **{name: "methods" for name in _METHODS},
    "lrp": "methods.relevance.propagate",
    "Heatmaps": "core.heatmaps", "normalize_maps": "core.heatmaps",
    "Classes": "core.targets", "ScoreFn": "core.targets", "SegmentationMask": "core.targets",
    "DetectorBox": "core.targets", "Regression": "core.targets",
    "to_device": "core.device",
    "load_model": "models.zoo", "LoadedModel": "models.zoo", "Preprocess": "models.zoo",
    "sample_image": "models.images", "load_image": "models.images",
    "resolve_class": "models.classes", "predict": "models.predict",
    "deletion": "metrics.faithfulness", "insertion": "metrics.faithfulness",
    "confidence_change": "metrics.faithfulness", "road": "metrics.road",
    "cascading_randomization": "metrics.sanity",
    "evaluate": "evaluation", "EvalSettings": "evaluation",
    "activations": "features.activations", "AscentConfig": "features.ascent",
    "visualize_filters": "features.ascent", "visualize_classes": "features.ascent",
    "explain_folder": "datasets.explain_run", "DatasetSettings": "datasets.explain_run",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
