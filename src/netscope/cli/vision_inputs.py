"""What a vision command checks before it loads a model: a typo in a path, a class name or
the output folder fails in a second instead of after the model has loaded."""

from __future__ import annotations

from netscope.errors import NetscopeError


def sources(args, names: list[str] | None = None) -> list[tuple[str, str]]:
    """(display name, source) for the command's images (the samples with --demo), or for
    ``names`` (another option's images)."""
    from pathlib import Path

    from netscope.vision.models.images import SAMPLES, expand_sources

    if names is None:
        names = list(args.images) or (list(SAMPLES) if getattr(args, "demo", False) else [])
    if not names:
        raise NetscopeError("give at least one image (a file, a folder, or a sample: "
                            f"{', '.join(SAMPLES)}), or --demo.")
    for name in names:
        if name not in SAMPLES and not Path(name).exists():
            raise NetscopeError(f"{name}: file not found (give image files, folders of "
                                f"images, or a sample: {', '.join(SAMPLES)}).")
    return expand_sources(names)


def start(args, images: bool = True, classes: list[str] | None = None, writes: bool = True):
    """Check the output folder (when the command ``writes``), the image paths and the class
    names (when the model's classes are known without loading it), then load the model.
    Returns (loaded model, [(name, source)])."""
    from netscope.files.folders import check_writable_dir

    if writes:
        check_writable_dir(args.out)
    found = sources(args) if images else []  # paths first: no PyTorch import for a typo
    from netscope.vision.models.classes import known_class_names, resolve_class

    names = known_class_names(args.model)
    for c in (classes or []) if names else []:
        resolve_class(c, names, len(names))  # before PyTorch loads: a typo fails at once
    from netscope.vision.core.device import resolve_device, to_device
    from netscope.vision.models.zoo import load_model

    if getattr(args, "device", None):
        resolve_device(args.device)  # an unknown or missing device fails before loading
    return to_device(load_model(args.model), getattr(args, "device", None),
                     getattr(args, "output_key", None)), found
