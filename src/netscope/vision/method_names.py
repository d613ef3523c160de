"""The attribution methods `vision evaluate` can score, by name: a light module, so the
command line can list them in --help without importing PyTorch."""

EVAL_METHODS = ("gradcam", "gradcam++", "xgradcam", "layercam", "hirescam", "eigencam", "cam",
                "scorecam", "ablationcam", "saliency", "smoothgrad", "integrated-gradients",
                "occlusion", "guided", "random")
