"""Command line: parses arguments, calls the library, prints. Nothing else lives here."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from netscope.errors import NetscopeError


def _progress(quiet: bool):
    start = time.perf_counter()

    def report(msg: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return report


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        msg = f"expected comma-separated numbers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        msg = f"expected comma-separated integers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _add_multitask(sub) -> None:
    mt = sub.add_parser("multitask", help="multi-task learning on grouped tabular data")
    mts = mt.add_subparsers(dest="action", required=True)
    run = mts.add_parser("run", help="train and compare every model family on the same splits")
    src = run.add_argument_group("data")
    src.add_argument("--dataset", choices=["school", "survey"], default="school",
                     help="built-in reference data set (default: school)")
    src.add_argument("--csv", metavar="FILE",
                     help="your own grouped data (CSV, or Parquet with pyarrow) instead")
    src.add_argument("--task-column", help="column naming each row's task (with --csv)")
    src.add_argument("--target-column", help="column to predict (with --csv)")
    src.add_argument("--features", help="comma-separated feature columns (default: all others)")
    src.add_argument("--data-dir", help="folder holding school/ and computer_survey/ "
                     "(default: $NETSCOPE_DATA, else a verified download into the cache)")
    run.add_argument("--protocol", choices=["lecture", "standard"], default="lecture")
    run.add_argument("--splits", type=int, help="use only the first N splits (standard)")
    run.add_argument("--test-fraction", type=float, help="test share for random splits")
    run.add_argument("--families", help="comma-separated subset of model families")
    run.add_argument("--out", help="output folder (default: netscope-results/DATA-PROTOCOL)")
    run.add_argument("--save-models", action="store_true",
                     help="also save each fitted model (first split) under OUT/models/")
    run.add_argument("--quiet", action="store_true", help="no progress messages")
    hp = run.add_argument_group("hyper-parameters (defaults: the course's values)")
    hp.add_argument("--seed", type=int)
    hp.add_argument("--batch-size", type=int)
    hp.add_argument("--lr", type=float)
    hp.add_argument("--per-task-epochs", type=int)
    hp.add_argument("--per-task-hidden", type=_ints)
    hp.add_argument("--pooled-epochs", type=int)
    hp.add_argument("--gated-epochs", type=int)
    hp.add_argument("--stage-epochs", type=_ints, help="three values, e.g. 10,10,10")
    hp.add_argument("--stage-lr", type=_floats, help="three values, e.g. 1e-3,1e-4,1e-5")
    hp.add_argument("--shared-reduce", choices=["sum", "mean"])
    hp.add_argument("--ridge-folds", type=int)
    hp.add_argument("--weight-decay", type=float, help="L2 on the networks' weights")
    run.set_defaults(func=_multitask_run)


def _load(args, progress):
    from netscope.data import load_school, load_survey, load_table

    if args.csv:
        if not args.task_column or not args.target_column:
            raise NetscopeError("--csv needs --task-column and --target-column.")
        feats = args.features.split(",") if args.features else None
        return load_table(args.csv, args.task_column, args.target_column, feats)
    loader = load_school if args.dataset == "school" else load_survey
    return loader(args.data_dir, progress=progress)


def _multitask_run(args) -> int:
    from netscope.multitask import protocols
    from netscope.multitask.compare import FAMILIES, Settings, compare
    from netscope.render.comparison import text_report, write_comparison

    progress = _progress(args.quiet)
    data = _load(args, progress)
    if args.protocol == "lecture":
        protocol = protocols.lecture(data, seed=args.seed or 0, test_fraction=args.test_fraction)
    else:
        protocol = protocols.standard(data, args.data_dir, n_splits=args.splits,
                                      seed=args.seed or 0,
                                      test_fraction=args.test_fraction or 0.25, progress=progress)
    names = ("seed", "batch_size", "lr", "per_task_epochs", "per_task_hidden", "pooled_epochs",
             "gated_epochs", "stage_epochs", "stage_lr", "shared_reduce", "ridge_folds",
             "weight_decay")
    settings = Settings.for_dataset(data.name, **{n: getattr(args, n) for n in names})
    families = args.families.split(",") if args.families else list(FAMILIES)
    comp = compare(data, protocol, settings, families, progress)
    out = Path(args.out or f"netscope-results/{data.name}-{protocol.name}")
    paths = write_comparison(comp, out)
    if args.save_models:
        for res in comp.results:
            res.model.save(out / "models" / res.family.key)
    print(text_report(comp))
    print(f"\nwrote {len(paths)} files to {out}/ (open {paths['report.html']})")
    return 0


def _add_data(sub) -> None:
    data = sub.add_parser("data", help="the reference data sets")
    ds = data.add_subparsers(dest="action", required=True)
    fetch = ds.add_parser("fetch", help="download school and survey data into the cache "
                          "(SHA-256 verified)")
    fetch.add_argument("--dir", help="target folder (default: the cache)")
    fetch.set_defaults(func=_data_fetch)
    check = ds.add_parser("check", help="verify a data folder against the known checksums")
    check.add_argument("--data-dir")
    check.set_defaults(func=_data_check)


def _data_fetch(args) -> int:
    from netscope.data.sources import fetch_all

    root = fetch_all(Path(args.dir) if args.dir else None, progress=_progress(False))
    print(f"data ready in {root}")
    return 0


def _data_check(args) -> int:
    from netscope.data.sources import FILES, data_dir, sha256

    root, bad = data_dir(args.data_dir), 0
    for rel, (_, expected) in FILES.items():
        path = root / rel
        status = "missing" if not path.is_file() else (
            "ok" if sha256(path) == expected else "CHECKSUM MISMATCH")
        bad += status != "ok"
        print(f"{status:18s} {path}")
    return 1 if bad else 0


def _channels(text: str) -> list[int]:
    """'0-15' or '0,3,7' -> channel list."""
    out: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                a, b = part.split("-")
                out += list(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected channels like 0-15 or 0,3,7, got {text!r}") \
            from None
    return out


def _add_vision(sub) -> None:
    vis = sub.add_parser("vision", help="see inside convolutional networks")
    vs = vis.add_subparsers(dest="action", required=True)

    def common(p, images: bool = True):
        p.add_argument("--model", default="efficientnet-lite0",
                       help="efficientnet-lite0 (offline default), torchvision:NAME, timm:NAME, "
                       "a TorchScript file, or module:function")
        if images:
            p.add_argument("images", nargs="*",
                           help="image files, or sample names: chelsea coffee astronaut rocket")
        p.add_argument("--out", default="netscope-results/vision", help="output folder")

    p = vs.add_parser("layers", help="list every layer with its output shape")
    common(p, images=False)
    p.add_argument("--size", type=int, help="probe image size (default: the model's)")
    p.set_defaults(func=_vision_layers)

    p = vs.add_parser("predict", help="top-k classes for images")
    common(p)
    p.add_argument("--top", type=int, default=5)
    p.set_defaults(func=_vision_predict)

    p = vs.add_parser("gradcam", help="class heatmaps over images (Grad-CAM and relatives)")
    common(p)
    p.add_argument("--layer", help="layer (default: the feature map the head pools)")
    p.add_argument("--class", dest="classes", action="append",
                   help="class name or index (repeat per image; default: top-1)")
    p.add_argument("--method", choices=["gradcam", "gradcam++", "cam", "guided"],
                   default="gradcam")
    p.add_argument("--normalize", choices=["max", "minmax"], default="max",
                   help="divide by the maximum (default) or min-max scale")
    p.set_defaults(func=_vision_gradcam)

    p = vs.add_parser("saliency", help="image-gradient saliency (optionally SmoothGrad)")
    common(p)
    p.add_argument("--class", dest="classes", action="append")
    p.add_argument("--smooth", type=int, default=0, help="SmoothGrad samples (0: plain)")
    p.set_defaults(func=_vision_saliency)

    p = vs.add_parser("activations", help="feature maps of chosen layers as grids")
    common(p)
    p.add_argument("--layers", help="comma-separated layers (default: every conv stage)")
    p.add_argument("--max-channels", type=int, default=64)
    p.set_defaults(func=_vision_activations)

    for name, helptext in (("filters", "pictures that excite filters (gradient ascent)"),
                           ("classes", "pictures that excite classes (Simonyan et al. 2013)")):
        p = vs.add_parser(name, help=helptext)
        common(p, images=False)
        if name == "filters":
            p.add_argument("--layer", required=True)
            p.add_argument("--channels", type=_channels, default=list(range(16)))
        else:
            p.add_argument("targets", nargs="+", help="class names or indices")
            p.add_argument("--l2", type=float, default=1e-3)
        p.add_argument("--steps", type=int, default=40)
        p.add_argument("--lr", type=float, default=0.1)
        p.add_argument("--size", type=int, default=128)
        p.add_argument("--jitter", type=int, default=4)
        p.add_argument("--blur-every", type=int, default=4)
        p.add_argument("--tv", type=float, default=0.0)
        p.add_argument("--octaves", type=int, default=1)
        p.add_argument("--seed", type=int, default=0)
        p.set_defaults(func=_vision_ascent)

    p = vs.add_parser("report", help="HTML report per image: predictions, Grad-CAM, saliency, "
                      "activations")
    common(p)
    p.add_argument("--demo", action="store_true", help="use the four bundled sample photos")
    p.add_argument("--one-page", action="store_true", help="one page for all images")
    p.add_argument("--top", type=int, default=3, help="classes explained per image")
    p.add_argument("--layer", help="Grad-CAM layer")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_vision_report)


def _images(args) -> list[tuple[str, object]]:
    from netscope.vision.images import SAMPLES, load_image

    names = list(args.images) or (list(SAMPLES) if getattr(args, "demo", False) else [])
    if getattr(args, "demo", False) and args.images:
        names = list(args.images)
    if not names:
        raise NetscopeError("give at least one image (a file, or a sample: "
                            f"{', '.join(SAMPLES)}), or --demo.")
    return [(Path(n).stem, load_image(n)) for n in names]


def _vision_layers(args) -> int:
    from netscope.render.table import markdown_table
    from netscope.vision.activations import list_layers
    from netscope.vision.models import load_model

    lm = load_model(args.model)
    rows = [[i.name, i.kind, "x".join(map(str, i.shape)) if i.shape else "-", str(i.calls)]
            for i in list_layers(lm.model, args.size or lm.preprocess.size)]
    print(markdown_table(["layer", "type", "output shape", "calls"], rows))
    return 0


def _vision_predict(args) -> int:
    from netscope.vision.attribution import predict
    from netscope.vision.models import load_model

    lm = load_model(args.model)
    for name, rgb in _images(args):
        print(name)
        for i, label, p in predict(lm.model, lm.preprocess.tensor(rgb), args.top,
                                   lm.class_names)[0]:
            print(f"  {p:7.2%}  {label} ({i})")
    return 0


def _targets(args, lm, n: int):
    from netscope.vision.classes import resolve_class

    if not args.classes:
        return None
    n_out = lm.model(lm.preprocess.tensor(np.zeros((8, 8, 3), np.float32))).shape[1] \
        if lm.class_names is None else len(lm.class_names)
    idx = [resolve_class(c, lm.class_names, n_out) for c in args.classes]
    return idx if len(idx) == n else idx[:1] * n


def _vision_gradcam(args) -> int:
    import torch

    from netscope.render.heatmap import gradient_image, overlay
    from netscope.render.vision_report import slug
    from netscope.vision import attribution as A
    from netscope.vision.images import save_png
    from netscope.vision.models import load_model

    lm = load_model(args.model)
    images = _images(args)
    x = torch.cat([lm.preprocess.tensor(rgb) for _, rgb in images])
    targets = _targets(args, lm, len(images))
    if args.method == "cam":
        heat = A.cam(lm.model, x, args.layer, targets=targets, normalize=args.normalize)
    else:
        method = "gradcam" if args.method == "guided" else args.method
        heat = A.grad_cam(lm.model, x, args.layer, targets, method, args.normalize)
    up = heat.upsampled(tuple(x.shape[-2:])).numpy()
    guided = A.guided_grad_cam(lm.model, x, args.layer, heat.targets).numpy() \
        if args.method == "guided" else None
    for j, (name, rgb) in enumerate(images):
        t = int(heat.targets[j])
        label = lm.class_names[t] if lm.class_names else f"class {t}"
        picture = gradient_image(guided[j]) if guided is not None else \
            overlay(lm.preprocess.image(rgb), up[j])
        path = save_png(picture, Path(args.out) / f"{slug(name)}_{args.method}_{slug(label)}.png")
        print(f"{name}: {label} ({t}), layer {heat.layer} -> {path}")
    return 0


def _vision_saliency(args) -> int:
    import torch

    from netscope.render.heatmap import saliency_image
    from netscope.render.vision_report import slug
    from netscope.vision import attribution as A
    from netscope.vision.images import save_png
    from netscope.vision.models import load_model

    lm = load_model(args.model)
    images = _images(args)
    x = torch.cat([lm.preprocess.tensor(rgb) for _, rgb in images])
    sal = A.saliency(lm.model, x, _targets(args, lm, len(images)), samples=args.smooth)
    for j, (name, _) in enumerate(images):
        t = int(sal.targets[j])
        label = lm.class_names[t] if lm.class_names else f"class {t}"
        path = save_png(saliency_image(sal.maps[j].numpy()),
                        Path(args.out) / f"{slug(name)}_saliency_{slug(label)}.png")
        print(f"{name}: {label} ({t}) -> {path}")
    return 0


def _vision_activations(args) -> int:
    from netscope.render.atomic import write_bytes
    from netscope.render.grids import feature_grid_png
    from netscope.render.vision_report import slug
    from netscope.vision.activations import activations
    from netscope.vision.models import load_model

    lm = load_model(args.model)
    layers = args.layers.split(",") if args.layers else None
    for name, rgb in _images(args):
        acts = activations(lm.model, lm.preprocess.tensor(rgb), layers)
        for layer, a in acts.items():
            path = write_bytes(Path(args.out) / f"{slug(name)}_activations_{slug(layer)}.png",
                               feature_grid_png(a[0].numpy(), layer, args.max_channels))
            print(f"{name}: {layer} {tuple(a.shape[1:])} -> {path}")
    return 0


def _vision_ascent(args) -> int:
    from netscope.render.vision_report import slug, write_gallery
    from netscope.vision.ascent import AscentConfig, visualize_classes, visualize_filters
    from netscope.vision.classes import resolve_class
    from netscope.vision.explain import as_numpy_images
    from netscope.vision.models import load_model

    lm = load_model(args.model)
    common = dict(steps=args.steps, lr=args.lr, size=args.size, jitter=args.jitter,
                  blur_every=args.blur_every, tv=args.tv, octaves=args.octaves, seed=args.seed)
    if args.action == "filters":
        res = visualize_filters(lm.model, args.layer, args.channels, lm.preprocess,
                                AscentConfig(**common))
        title, stem = f"Filters of {args.layer}", f"filters_{slug(args.layer)}"
        note = ("Each picture maximizes the mean activation of one channel by gradient ascent "
                "from grey plus noise, with RMS-normalized gradient steps.")
    else:
        n_out = len(lm.class_names) if lm.class_names else 1000
        classes = [resolve_class(c, lm.class_names, n_out) for c in args.targets]
        res = visualize_classes(lm.model, classes, lm.preprocess,
                                AscentConfig(l2=args.l2, **common), lm.class_names)
        title, stem = "Class visualizations", "classes_" + "_".join(slug(r) for r in res.labels)
        note = ("Each picture maximizes one class logit minus an L2 penalty on the image "
                "(Simonyan et al. 2013), with RMS-normalized gradient steps.")
    gain = (res.history[-1] - res.history[0]).tolist()
    path = write_gallery(as_numpy_images(res.images), res.labels, title,
                         note + f" Settings: {common}.", args.out, stem)
    for label, g in zip(res.labels, gain, strict=True):
        print(f"{label}: objective +{g:.3f} over {len(res.history)} steps")
    print(f"wrote {path}")
    return 0


def _vision_report(args) -> int:
    from netscope.render.vision_report import write_explanations
    from netscope.vision.explain import explain
    from netscope.vision.models import load_model

    progress = _progress(args.quiet)
    lm = load_model(args.model)
    exps = []
    for name, rgb in _images(args):
        progress(f"explaining {name}")
        exps.append(explain(lm, rgb, name, top=args.top, layer=args.layer))
    for path in write_explanations(exps, args.out, lm.name, args.one_page):
        print(f"wrote {path}")
    return 0


def _add_live(sub) -> None:
    p = sub.add_parser("live", help="Grad-CAM heatmaps or layer activations on camera or "
                       "video frames in real time")
    p.add_argument("--source", default="0",
                   help="camera index (default 0), video file, folder of images, or 'pattern'")
    p.add_argument("--model", default="efficientnet-lite0")
    p.add_argument("--mode", choices=["heatmap", "activations"], default="heatmap")
    p.add_argument("--layer", help="starting layer for activations mode")
    p.add_argument("--frames", type=int, help="stop after N processed frames")
    p.add_argument("--record", help="write the overlaid stream to this .mp4/.avi file")
    p.add_argument("--snapshots", default="netscope-results/live", help="snapshot folder")
    p.add_argument("--no-display", action="store_true", help="no window and no page (headless)")
    p.add_argument("--web", action="store_true",
                   help="serve the stream and controls as a web page instead of a window "
                   "(automatic where no display exists)")
    p.add_argument("--host", default="127.0.0.1", help="address for the page (default local)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--every-frame", action="store_true",
                   help="process every frame of a file instead of dropping stale ones")
    p.set_defaults(func=_live)


def _live(args) -> int:
    from netscope.vision.live import pipeline
    from netscope.vision.live.record import Recorder
    from netscope.vision.live.sources import open_source
    from netscope.vision.live.view import LiveView
    from netscope.vision.live.web import WebSink
    from netscope.vision.live.window import WindowSink, window_available
    from netscope.vision.models import load_model

    lm = load_model(args.model)
    view = LiveView(lm, args.mode, args.layer, args.snapshots)
    source = open_source(args.source)
    sinks, window, web, recorder = [], None, None, None
    if not args.no_display:
        if not args.web and window_available():
            window = WindowSink(view)
            sinks.append(window)
        else:
            try:
                web = WebSink(view, args.host, args.port,
                              notify=lambda m: print(f"netscope: {m}", file=sys.stderr))
            except OSError as exc:
                source.close()
                raise NetscopeError(f"cannot serve on {args.host}:{args.port} ({exc}); "
                                    f"pick another --port.") from None
            sinks.append(web)
            print(f"live page: {web.url}  (Ctrl-C or the quit button stops)", flush=True)
    if args.record:
        recorder = Recorder(args.record)
        sinks.append(recorder)
    if not sinks and args.frames is None and args.source.isdigit():
        raise NetscopeError("nothing to show or record: add --record FILE or --frames N.")
    try:
        stats = pipeline.run(source, lambda f: view.render(f.image), sinks, args.frames,
                             block=args.every_frame,
                             fps=None if args.every_frame else source.fps)
    except KeyboardInterrupt:
        stats = None
    finally:
        if window:
            window.close()
        if web:
            web.close()
        written = recorder.close() if recorder else None
    if stats is None:
        print("stopped")
        return 0
    print(f"{source.name} ({stats.reason}): {stats.processed} frames in {stats.seconds:.1f} s "
          f"({stats.fps:.1f} fps), median latency {stats.median_latency * 1e3:.0f} ms, "
          f"{stats.dropped} stale frames dropped")
    if written:
        print(f"recorded {recorder.frames} frames to {written}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netscope", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_multitask(sub)
    _add_data(sub)
    _add_vision(sub)
    _add_live(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from netscope.perf import tune_malloc

    args = build_parser().parse_args(argv)
    tune_malloc()
    try:
        return args.func(args)
    except NetscopeError as exc:
        print(f"netscope: error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:
        print(f"netscope: error: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
