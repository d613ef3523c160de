"""Attribution methods, one entry point each, all ``(model, x, targets=None, *, ...)`` and
all returning ``Heatmaps``; ``explain(name, ...)`` calls any of them by its registered name
(``registry``). Imported on first use, so the registry stays free of PyTorch."""

from netscope.lazy import lazy_exports

_EXPORTS = {
    "explain": "registry", "method": "registry", "names": "registry", "METHODS": "registry",
    "Method": "registry", "Setting": "registry",
    "grad_cam": "grad_cam_family", "layer_gradients": "grad_cam_family",
    "cam": "class_activation", "eigen_cam": "eigen",
    "saliency": "gradients", "input_grad": "gradients",
    "score_cam": "forward_cams", "ablation_cam": "forward_cams",
    "integrated_gradients": "path_integral", "occlusion": "occlusion_map",
    "guided_backprop": "guided", "guided_grad_cam": "guided",
    "attention_rollout": "rollout", "random_map": "random_floor",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
