"""`netscope vision ...`: look inside a CNN, image by image."""

from __future__ import annotations

import sys
from pathlib import Path

from netscope.cli.common import Heartbeat, notice, progress_printer
from netscope.cli.method_options import (
    add_method_options,
    add_metric_options,
    given_settings,
    method_settings,
    refuse_foreign,
)
from netscope.cli.options import number
from netscope.cli.vision_ascent import add_ascent
from netscope.cli.vision_atlas import add_atlas, add_concepts
from netscope.cli.vision_circuit import add_circuit
from netscope.cli.vision_dataset import add_dataset
from netscope.cli.vision_dictionary import add_craft, add_dictionary
from netscope.cli.vision_inputs import start
from netscope.cli.vision_tcav import add_tcav
from netscope.errors import NetscopeError
from netscope.vision.methods.registry import METHODS, describe, method, names
from netscope.vision.metrics.choices import BULK_DEFAULTS, default_metrics
from netscope.vision.metrics.registry import METRICS as METRIC_TABLE


def host(t):
    """``vision.host.host``, imported when first used (``--help`` stays free of PyTorch)."""
    from netscope.vision.core.host import host as to_numpy

    return to_numpy(t)


def add(sub) -> None:
    vis = sub.add_parser("vision", help="see inside convolutional networks")
    vs = vis.add_subparsers(dest="action", required=True)

    def common(p, images: bool = True):
        p.add_argument("--model", default="efficientnet-lite0",
                       help="efficientnet-lite0 (offline default), torchvision:NAME, timm:NAME, "
                       "a TorchScript file, or module:function")
        if images:
            p.add_argument("images", nargs="*",
                           help="image files, folders of images, or sample names: chelsea coffee "
                           "astronaut rocket")
        p.add_argument("--out", default="netscope-results/vision", help="output folder")
        p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the model's "
                       "device, else the CPU)")
        p.add_argument("--output-key", help="for models that return a dict or tuple: the "
                       "entry (or position) holding the class scores")

    p = vs.add_parser("layers", help="list every layer with its output shape")
    common(p, images=False)
    number(p, "--size", lo=8, hi=4096, help="probe image size (default: the model's)")
    p.set_defaults(func=_vision_layers)

    p = vs.add_parser("predict", help="top-k classes for images")
    common(p)
    number(p, "--top", lo=1, hi=100_000, default=5, help="classes per image")
    p.set_defaults(func=_vision_predict)

    p = vs.add_parser("gradcam", help="class heatmaps over images (Grad-CAM and relatives)")
    common(p)
    p.add_argument("--class", dest="classes", action="append",
                   help="class name or index (repeat per image; default: top-1)")
    _target_options(p)
    p.add_argument("--method", default="gradcam", choices=names("gradcam"),
                   help=describe(names("gradcam")))
    number(p, "--batch-size", lo=1, hi=4096, default=16, help="images per pass")
    _bare(p)
    add_method_options(p, names("gradcam"), shared=("batch_size",))
    p.set_defaults(func=_vision_gradcam)

    p = vs.add_parser("saliency", help="pixel attributions: image-gradient saliency "
                      "(optionally SmoothGrad), Integrated Gradients, Occlusion")
    common(p)
    p.add_argument("--class", dest="classes", action="append")
    _target_options(p)
    p.add_argument("--method", choices=names("saliency"), default="saliency",
                   help=describe(names("saliency")) + " (saliency with --smooth N: SmoothGrad)")
    number(p, "--smooth", lo=0, hi=10_000, default=0,
           help="SmoothGrad samples (0: plain): --method saliency --smooth N is --method "
           "smoothgrad --samples N")
    number(p, "--batch-size", lo=1, hi=4096, default=16, help="images per pass")
    _bare(p)
    add_method_options(p, names("saliency"), shared=("batch_size",))
    p.set_defaults(func=_vision_saliency)

    p = vs.add_parser("activations", help="feature maps of chosen layers as grids")
    common(p)
    p.add_argument("--layers", help="comma-separated layers (default: every conv stage)")
    number(p, "--max-channels", lo=1, hi=4096, default=64, help="channels drawn per layer")
    p.add_argument("--order", choices=["auto", "index", "strongest"], default="auto",
                   help="which channels to draw: the first ones (index), the ones with the "
                   "largest mean activation (strongest), or auto: index when all fit")
    p.add_argument("--shared-scale", action="store_true",
                   help="one colour scale for all maps, with a colour bar (default: each map "
                   "scaled on its own)")
    p.set_defaults(func=_vision_activations)

    add_ascent(vs, common)
    add_dataset(vs, common)
    add_atlas(vs, common)
    add_concepts(vs, common)
    add_dictionary(vs, common)
    add_craft(vs, common)
    add_tcav(vs, common)
    add_circuit(vs, common)

    p = vs.add_parser("evaluate", help="which map to trust: every method scored by "
                      + ", ".join(m.label for m in METRIC_TABLE.values()))
    common(p)
    p.add_argument("--demo", action="store_true", help="use the four bundled sample photos")
    p.add_argument("--methods", default="all",
                   help="comma-separated methods, or 'all' (every one but "
                   + ", ".join(n for n in METHODS if n not in names("all")) + "): "
                   + ", ".join(METHODS) + "; methods a model cannot run (CAM without a linear "
                   "head) are skipped under 'all' and listed")
    p.add_argument("--class", dest="classes", action="append",
                   help="class name or index (repeat per image; default: top-1)")
    number(p, "--batch-size", lo=1, hi=4096, default=16,
           help="images per forward pass in the metrics and perturbation methods")
    p.add_argument("--metrics", default="all",
                   help=f"comma-separated: {', '.join(METRIC_TABLE)}; or 'all' (default: "
                   f"{', '.join(default_metrics())})")
    p.add_argument("--masks", help="folder of object masks, one per image named as the "
                   "image (NAME.png, white = inside, the image's size): adds the "
                   "localisation metrics to the table and the ranking")
    add_metric_options(p, list(METRIC_TABLE))
    p.add_argument("--quiet", action="store_true")
    add_method_options(p, names(), shared=("batch_size",), overrides=BULK_DEFAULTS,
                       title="method settings (given to every method that reads them; "
                       "default: each method's own)")
    p.set_defaults(func=_vision_evaluate, out="netscope-results/vision-evaluate")

    p = vs.add_parser("report", help="HTML report per image: predictions, Grad-CAM, saliency, "
                      "activations")
    common(p)
    p.add_argument("--demo", action="store_true", help="use the four bundled sample photos")
    p.add_argument("--one-page", action="store_true", help="one page for all images")
    number(p, "--top", lo=1, hi=100, default=3, help="classes explained per image")
    p.add_argument("--layer", help="Grad-CAM layer")
    number(p, "--smooth", lo=0, hi=10_000, default=8,
           help="SmoothGrad samples for the saliency maps (0: plain gradient)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_vision_report, out="netscope-results/vision-report")


def _read(name: str, src):
    """The RGB array, or None with a warning line: one unreadable file in a folder is
    skipped and said, as `vision explain` does, not the end of the whole run."""
    from netscope.vision.models.images import load_image

    try:
        return load_image(src)
    except NetscopeError as exc:
        print(f"netscope: warning: {str(exc).rstrip('.')}; skipped.", file=sys.stderr,
              flush=True)
        return None


def _each_image(sources):
    """(name, RGB array) one at a time, so a folder of thousands never sits in memory;
    unreadable files are skipped with a warning, and none readable at all is an error."""
    read = 0
    for name, src in sources:
        rgb = _read(name, src)
        if rgb is not None:
            read += 1
            yield name, rgb
    if sources and not read:
        raise NetscopeError(f"none of the {len(sources)} image(s) could be read.")


def _batches(args, lm, sources):
    """([(name, RGB array)...], model input, --class targets or None) per --batch-size
    images; --class values given per image follow their images across batches."""
    import torch

    spec = _target_spec(args, lm)
    targets = None if spec is not None else _targets(args, lm, len(sources))
    read = 0
    for first in range(0, len(sources), args.batch_size):
        chunk = range(first, min(first + args.batch_size, len(sources)))
        loaded = [(i, _read(*sources[i])) for i in chunk]
        kept = [i for i, rgb in loaded if rgb is not None]
        if not kept:
            continue
        read += len(kept)
        images = [(sources[i][0], rgb) for i, rgb in loaded if rgb is not None]
        x = torch.cat([lm.preprocess.tensor(rgb) for _, rgb in images])
        yield images, x, spec if spec is not None else \
            [targets[i] for i in kept] if targets else None
    if sources and not read:
        raise NetscopeError(f"none of the {len(sources)} image(s) could be read.")


def _target_options(p) -> None:
    p.add_argument("--mask", help="segmentation models: explain the sum of --class's logits "
                   "inside this mask (an image file, white = inside, same framing as the "
                   "image; scaled to the output's size)")
    p.add_argument("--regression", nargs="?", const=-1, type=int, metavar="INDEX",
                   help="regression models: explain an output value (INDEX of several; none "
                   "for a single output)")


def _target_spec(args, lm):
    """A --mask or --regression target (the same for every image), or None for classes."""
    from netscope.vision.core.targets import Regression, SegmentationMask
    from netscope.vision.models.classes import resolve_class
    from netscope.vision.models.masks import load_mask

    mask, regression = getattr(args, "mask", None), getattr(args, "regression", None)
    if mask and regression is not None:
        raise NetscopeError("give --mask (segmentation) or --regression, not both.")
    if regression is not None:
        if args.classes:
            raise NetscopeError("--regression explains an output value, not a class: drop "
                                "--class.")
        return Regression(None if regression < 0 else regression)
    if not mask:
        return None
    if not args.classes or len(args.classes) != 1:
        raise NetscopeError("--mask needs one --class: the class whose logits are summed "
                            "inside the mask.")
    if lm.class_names:
        k = resolve_class(args.classes[0], lm.class_names, len(lm.class_names))
    elif not args.classes[0].isdigit():
        raise NetscopeError(f"the model has no class names; give --class as an index, got "
                            f"{args.classes[0]!r}.")
    else:
        k = int(args.classes[0])
    inside = load_mask(mask, lm.preprocess)
    return SegmentationMask(k, inside.float(), resize=True)


def _vision_layers(args) -> int:
    from netscope.render.table import markdown_table
    from netscope.vision.core.layer_choice import default_layer, grid_layers, probe_image
    from netscope.vision.features.activations import list_layers

    lm, _ = start(args, images=False, writes=False)
    size = args.size or lm.preprocess.size
    found = grid_layers(lm.model, probe_image(lm.model, size))
    grids = {g.name: g for g in found}
    default = default_layer(lm.model, grids=found)
    rows = [[i.name, i.module_type, "x".join(map(str, i.shape)) if i.shape else "-", str(i.calls),
             _heatmap_cell(grids.get(i.name), default, i.name)]
            for i in list_layers(lm.model, size)]
    print(markdown_table(["layer", "type", "output shape", "calls", "heatmaps"], rows))
    print(f"default heatmap layer: {default}")
    return 0


def _heatmap_cell(grid, default, name: str) -> str:
    """Whether a layer can give heatmaps: its grid layout, or why not; marks the default."""
    mark = (" <- default" if default.port == "output" else " <- default (its input)") \
        if default.name == name else ""
    if grid is None:
        return "no grid" + mark
    if not grid.gradient:
        return f"{grid.layout}; score does not depend on it" + mark
    return f"yes: {grid.layout}" + mark


def _vision_predict(args) -> int:
    from netscope.vision.models.predict import predict

    lm, sources = start(args, writes=False)
    for name, rgb in _each_image(sources):
        print(name)
        for i, label, p in predict(lm.model, lm.preprocess.tensor(rgb), args.top,
                                   lm.class_names)[0]:
            print(f"  {p:7.2%}  {label} ({i})")
    return 0


def _targets(args, lm, n: int):
    """--class given once (for every image) or once per image; None: each image's top-1."""
    from netscope.vision.models.classes import resolve_class
    from netscope.vision.models.zoo import n_classes

    if not args.classes:
        return None
    if len(args.classes) not in (1, n):
        raise NetscopeError(f"{len(args.classes)} --class values for {n} images: give one "
                            f"for all images or one per image.")
    n_out = n_classes(lm)
    idx = [resolve_class(c, lm.class_names, n_out) for c in args.classes]
    return idx * n if len(idx) == 1 else idx


def _maps(args, command: str):
    """(images, model input, Heatmaps) per batch of the chosen method, after its checks."""
    m = method(_smooth(args) if command == "saliency" else args.method)
    if not m.class_specific and (args.classes or args.mask or args.regression is not None):
        raise NetscopeError(f"{m.label} is class-agnostic (one map per image, whatever the "
                            f"class): drop --class (and --mask, --regression), or pick a "
                            f"class-specific --method.")
    method_settings(args, m)  # foreign options refused before the model loads
    lm, sources = start(args, classes=args.classes)
    settings = method_settings(args, m, lm.preprocess.bounds())
    progress = progress_printer(getattr(args, "quiet", False))
    for images, x, t in _batches(args, lm, sources):
        with Heartbeat(progress, first=f"{m.label} on {len(images)} image(s)"):
            heat = m(lm.model, x, t, **settings)
        for warning in dict.fromkeys(heat.warnings):
            print(f"netscope: warning: {warning}", file=sys.stderr, flush=True)
        yield lm, images, x, heat


def _smooth(args) -> str:
    """--smooth N: SmoothGrad with N samples (the method ``saliency`` turns into)."""
    if not args.smooth:
        return args.method
    if args.method not in ("saliency", "smoothgrad"):
        raise NetscopeError(f"--smooth does not apply to {method(args.method).label}: it is "
                            f"a setting of smoothgrad; drop it or choose saliency.")
    if args.samples is not None and args.samples != args.smooth:
        raise NetscopeError(f"--smooth {args.smooth} and --samples {args.samples} disagree: "
                            f"give one of them.")
    args.samples = args.smooth
    return "smoothgrad"


def _bare(p) -> None:
    p.add_argument("--bare", action="store_true",
                   help="the plain picture at the model's input size, without the title "
                   "(class, method, layer) and the colour bar")


def _save_picture(args, picture, path: Path, title: str, scale: str) -> Path:
    """The labelled picture (or the bare one with --bare), written atomically."""
    from netscope.files.atomic import write_bytes
    from netscope.render.labelled import labelled_png
    from netscope.vision.models.images import save_png

    if args.bare:
        return save_png(picture, path)
    return write_bytes(path, labelled_png(picture, title, scale))


def _vision_gradcam(args) -> int:
    for lm, images, x, heat in _maps(args, "gradcam"):  # checks the inputs, then imports
        from netscope.render.heatmap import gradient_image, overlay
        from netscope.render.vision_report import slug
        from netscope.vision.models.classes import class_label

        up = None if heat.attributions is not None else heat.upsampled(tuple(x.shape[-2:]))
        for j, (name, rgb) in enumerate(images):
            k = int(heat.classes[j])
            label = class_label(lm.class_names, k)
            picture = gradient_image(host(heat.attributions[j])) if up is None else \
                overlay(lm.preprocess.image(rgb), host(up[j]))
            path = _save_picture(
                args, picture, Path(args.out) / f"{slug(name)}_{args.method}_{slug(label)}.png",
                f"{name}: {label} ({k})\n{heat.method} at {heat.layer}",
                "gradient" if up is None else "map")
            print(f"{name}: {label} ({k}), layer {heat.layer} -> {path}")
    return 0


def _vision_saliency(args) -> int:
    for lm, images, _, heat in _maps(args, "saliency"):  # checks the inputs, then imports
        from netscope.render.heatmap import relevance_image, saliency_image
        from netscope.render.vision_report import slug
        from netscope.vision.models.classes import class_label

        errors = heat.extras.get("completeness_error")
        signed = heat.signed()  # relevance: drawn with its sign
        composite = args.composite or METHODS[heat.method].defaults().get("composite")
        what = f"{heat.method}-{composite}" if composite else heat.method
        for j, (name, _) in enumerate(images):
            k = int(heat.classes[j])
            label = class_label(lm.class_names, k)
            note = "" if errors is None else \
                f", completeness error {float(errors[j]):.1%} (more --steps if large)"
            if "relevance" in heat.extras:
                note = (f", relevance {float(heat.extras['relevance'][j]):.4g} of the score "
                        f"{float(heat.extras['score'][j]):.4g} (the rest is absorbed by biases)")
            picture = saliency_image(host(heat.maps[j])) if signed is None else \
                relevance_image(host(heat.attributions[j].sum(0)))
            path = _save_picture(args, picture,
                                 Path(args.out) / f"{slug(name)}_{what}_{slug(label)}.png",
                                 f"{name}: {label} ({k})\n{what} (input pixels)",
                                 "saliency" if signed is None else "relevance")
            print(f"{name}: {label} ({k}){note} -> {path}")
    return 0


def _vision_activations(args) -> int:
    lm, sources = start(args)  # paths checked before PyTorch loads
    from netscope.files.atomic import write_bytes
    from netscope.render.grids import feature_grid_png
    from netscope.render.vision_report import slug
    from netscope.vision.features.activations import activations

    layers = args.layers.split(",") if args.layers else None
    for name, rgb in _each_image(sources):
        acts = activations(lm.model, lm.preprocess.tensor(rgb), layers)
        for layer, a in acts.items():
            path = write_bytes(Path(args.out) / f"{slug(name)}_activations_{slug(layer)}"
                               f"{_drawn_as(args)}.png",
                               feature_grid_png(host(a[0]), layer, args.max_channels,
                                                order=args.order, shared=args.shared_scale))
            print(f"{name}: {layer} {tuple(a.shape[1:])} -> {path}")
    return 0


def _drawn_as(args) -> str:
    """The file-name part that says how the grid was drawn, so a rerun with other options
    writes beside the earlier pictures instead of over them (empty for the defaults)."""
    parts = ([args.order] if args.order != "auto" else []) + \
        (["shared"] if args.shared_scale else []) + \
        ([f"{args.max_channels}ch"] if args.max_channels != 64 else [])
    return "".join(f"_{p}" for p in parts)


def _vision_report(args) -> int:
    import shlex
    import sys

    from netscope.files.folders import check_replaceable, staged_folder

    out = check_replaceable(args.out)
    progress = progress_printer(args.quiet)
    lm, sources = start(args)  # paths checked before PyTorch loads
    from netscope.render.vision_report import write_explanations
    from netscope.vision.report import explain

    exps = []
    with Heartbeat(progress) as beat:
        for name, rgb in _each_image(sources):
            beat(f"explaining {name}")
            exps.append(explain(lm, rgb, name, top=args.top, layer=args.layer,
                                smooth=args.smooth, progress=beat))
        with staged_folder(out, shlex.join(["netscope", *sys.argv[1:]]), notice) as stage:
            pages = write_explanations(exps, stage, lm.name, args.one_page, beat)
    for path in pages:
        print(f"wrote {out / path.relative_to(stage)}")
    print(f"open {out / pages[-1].relative_to(stage)}")  # the index (or the one page)
    return 0


def _vision_evaluate(args) -> int:
    import shlex

    from netscope.cli.vision_inputs import sources as check_sources
    from netscope.files.folders import check_replaceable, staged_folder
    from netscope.vision.metrics.choices import resolve_methods, resolve_metrics

    methods = args.methods.split(",")
    chosen = resolve_methods(methods)  # argument errors before PyTorch loads
    refuse_foreign(args, given_settings(args), [METHODS[n] for n in chosen])
    metrics = resolve_metrics(args.metrics.split(","))
    needing = [k for k in metrics if "masks" in METRIC_TABLE[k].needs]
    if needing and not args.masks and args.metrics != "all":
        raise NetscopeError(f"--metrics {','.join(needing)} needs --masks DIR (one object "
                            f"mask per image).")
    if args.masks and not Path(args.masks).is_dir():
        raise NetscopeError(f"--masks {args.masks}: not a folder.")
    out = check_replaceable(args.out)
    check_sources(args)
    from netscope.render.evaluation import text_report, write_evaluation
    from netscope.vision.evaluation import EvalSettings, evaluate

    progress = progress_printer(args.quiet)
    lm, sources = start(args, classes=args.classes)
    images = list(_each_image(sources))
    settings = EvalSettings(metrics=metrics,
                            metric_settings=given_settings(args, kind="metric"),
                            method_settings=given_settings(args, shared=False),
                            batch_size=args.batch_size)
    targets = _targets(args, lm, len(images))
    masks = None
    if args.masks:
        from netscope.vision.models.masks import masks_for

        masks = masks_for(images, args.masks, lm.preprocess)
    with Heartbeat(progress) as beat:
        ev = evaluate(lm, images, methods, settings, targets, beat, masks)
    with staged_folder(out, shlex.join(["netscope", *sys.argv[1:]]), notice) as stage:
        write_evaluation(ev, stage)
    print(text_report(ev))
    print(f"\nwrote {out}/ (open {out / 'report.html'})")
    return 0
