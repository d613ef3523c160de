"""The attribution methods `vision evaluate` can score, by name: a light module, so the
command line can list them in --help without importing PyTorch."""

EVAL_METHODS = ("gradcam", "gradcam++", "xgradcam", "layercam", "hirescam", "eigencam", "cam",
                "scorecam", "ablationcam", "saliency", "smoothgrad", "integrated-gradients",
                "occlusion", "guided", "random", "rollout")
TRANSFORMER_ONLY = ("rollout",)  # attention rollout needs a ViT's attention: not in 'all'
ALL_METHODS = tuple(m for m in EVAL_METHODS if m not in TRANSFORMER_ONLY)
