"""`netscope vision atlas FOLDER --layers L1,L2` (every unit of the chosen layers across a
dataset, as tables and a static site; resumable; torchrun-ready) and `netscope vision
concepts IMAGE` (one prediction explained by its units)."""

from __future__ import annotations

import sys
from pathlib import Path

from netscope.cli.common import progress_printer
from netscope.cli.options import dataset_options, number
from netscope.errors import NetscopeError


def add_atlas(vs, common) -> None:
    from netscope.vision.units import RELEVANCE

    p = vs.add_parser("atlas", help="a unit atlas: each unit's strongest dataset examples "
                      "with the patch it sees, statistics, alike units, circuits and feature "
                      "visualizations, as tables and a static site")
    common(p, images=False)
    p.add_argument("folder", nargs="?", help="folder tree of images (searched at any depth)")
    p.add_argument("--demo", action="store_true", help="the photos that scikit-image and "
                   "scikit-learn ship (and crops of them), on EfficientNet-Lite0's layers "
                   "_blocks.2 and _blocks.4 (pictures with 48 steps unless --picture-steps)")
    p.add_argument("--layers", help="comma-separated layer names (see `netscope vision "
                   "layers`); convolutional or a transformer's token grid")
    number(p, "--top", lo=1, hi=1000, default=9, help="strongest images kept per unit")
    dataset_options(p)
    p.add_argument("--param", choices=["fourier", "phase", "pixel"], default="fourier",
                   help="feature visualization: Fourier parametrization, phase-only with the "
                   "dataset's own amplitude spectrum (MaCo), or pixels")
    number(p, "--picture-steps", lo=1, hi=10_000, help="gradient-ascent steps (default: the "
           "parametrization's preset)")
    number(p, "--diverse", lo=0, hi=16, default=4, help="pictures in each unit's diversity "
           "set (0: none)")
    number(p, "--diversity", cast=float, lo=0, hi=100, default=0.5,
           help="weight of the diversity term (Gram cosine, relative to the objective)")
    p.add_argument("--no-pictures", action="store_true", help="skip feature visualizations")
    p.add_argument("--no-circuits", action="store_true", help="skip the unit-to-unit "
                   "circuits between consecutive chosen layers")
    p.add_argument("--relevance", choices=RELEVANCE, help="also rank each unit's images by "
                   "its share of the predicted class's relevance (relevance maximization, as "
                   "zennit-crp's reference images): gradient (activation x gradient, any "
                   "model) or lrp (epsilon-plus); one more backward pass per batch")
    p.add_argument("--dictionary", action="append", metavar="DIR",
                   help="a dictionary `netscope vision dictionary` learned for this model: "
                   "its features become a layer of the atlas (features_LAYER), beside their "
                   "layer, with the units each feature reads and the features each unit "
                   "feeds (repeat for several)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_vision_atlas, out="netscope-results/vision-atlas")


def _vision_atlas(args) -> int:
    from netscope.files.folders import check_writable_dir

    if not args.demo and not args.folder:
        raise NetscopeError("give a folder of images, or --demo.")
    if args.folder and not Path(args.folder).is_dir():
        raise NetscopeError(f"{args.folder}: not a folder; give the folder that holds the "
                            f"images.")
    if args.diverse == 1:
        raise NetscopeError("--diverse must be 0 (none) or at least 2, got 1.")
    layers = tuple(x.strip() for x in (args.layers or "").split(",") if x.strip())
    if not layers and not args.demo:
        raise NetscopeError("name the layers: --layers L1,L2 (see `netscope vision layers "
                            "--model ...` for the names).")
    check_writable_dir(args.out)
    from netscope.cli.vision_inputs import start
    from netscope.vision.datasets.explain_run import distributed_rank
    from netscope.vision.datasets.image_files import default_workers
    from netscope.vision.units.atlas_run import AtlasSettings
    from netscope.vision.units.demo import DEMO_LAYERS, DEMO_PICTURE_STEPS, demo_folder
    from netscope.vision.units.make import PictureSettings, make_atlas

    rank, world = distributed_rank()
    folder = args.folder or str(demo_folder(Path(args.out) / "demo-images"))
    layers = layers or DEMO_LAYERS
    dictionaries = [_dictionary(d) for d in args.dictionary or []]
    for _, meta in dictionaries:  # a feature layer comes with the layer it reads
        layers = (*layers, meta["layer"]) if meta["layer"] not in layers else layers
    AtlasSettings(layers).check()
    steps = args.picture_steps or (DEMO_PICTURE_STEPS if args.demo else None)
    pictures = None if args.no_pictures else PictureSettings(
        args.param, steps, args.diverse, args.diversity)
    lm, _ = start(args, images=False)
    if dictionaries:
        import numpy as np

        from netscope.vision.concepts.tap import attach_features

        for (learned, meta), path in zip(dictionaries, args.dictionary, strict=True):
            if meta["model"] != lm.name:
                raise NetscopeError(f"{path}: a dictionary of model {meta['model']!r}, not "
                                    f"{lm.name!r}; learn one for this model.")
            mean_code = meta.get("mean_code")
            layers = (*layers, attach_features(
                lm.model, meta["layer"], learned, lm.preprocess.size,
                mean_code=None if mean_code is None else np.asarray(mean_code)))
    settings = AtlasSettings(layers, args.top, args.batch_size,
                             default_workers() if args.workers is None else args.workers,
                             args.shard_size, args.relevance)
    settings.check()
    say = progress_printer(args.quiet or rank > 0)
    try:
        run = make_atlas(lm, folder, args.out, settings, pictures, not args.no_circuits,
                         args.table, say, rank, world)
    except KeyboardInterrupt:
        print(f"netscope: finished shards are kept in {args.out}; run the same command again "
              f"to continue.", file=sys.stderr)
        raise
    s = run.summary
    where = f"rank {rank}: " if world > 1 else ""
    print(f"{where}{s.recorded} images recorded, {s.unreadable} unreadable, {s.already} "
          f"already done, {s.images_per_second:.1f} images/s")
    for name, path in run.tables.items():
        print(f"{name}: {path}")
    if run.atlas is not None:
        from netscope.render.atlas_site import save_site
        from netscope.vision.units.site import site_views

        say("atlas: writing the site")
        print(f"site: {save_site(run.atlas, site_views(run.atlas, lm, folder), args.out, say)}")
    if s.unreadable:
        print(f"netscope: warning: {s.unreadable} file(s) could not be read; they are listed "
              f"in the files table (status 'unreadable').", file=sys.stderr)
    return 0


def _dictionary(folder: str):
    from netscope.vision.concepts.saved import load_dictionary

    return load_dictionary(folder)


def add_concepts(vs, common) -> None:
    p = vs.add_parser("concepts", help="one prediction explained by its units: the units of "
                      "a layer behind the class score, each with its own map (and, with "
                      "--atlas, its feature visualization and strongest dataset patches)")
    common(p)
    p.add_argument("--layer", help="layer (default: the one heatmaps use)")
    p.add_argument("--class", dest="classes", action="append",
                   help="class name or index (default: top-1)")
    number(p, "--top", lo=1, hi=64, default=6, help="units shown")
    p.add_argument("--relevance", choices=["gradient", "lrp"], default="gradient",
                   help="gradient: activation x gradient per unit; lrp: concept relevance "
                   "propagation (relevance through each unit)")
    p.add_argument("--atlas", help="an atlas folder of the same model and layer")
    p.add_argument("--dictionary", metavar="DIR", help="a dictionary of this model: its "
                   "features (layer features_LAYER, the default --layer then) are explained "
                   "instead of units; with --relevance lrp each feature's map is its "
                   "concept-conditional relevance")
    p.set_defaults(func=_vision_concepts, out="netscope-results/vision-concepts")


def _vision_concepts(args) -> int:
    if args.atlas and not (Path(args.atlas) / "atlas-run.json").is_file():
        raise NetscopeError(f"--atlas {args.atlas}: no atlas-run.json there; give the folder "
                            f"that `netscope vision atlas` wrote.")
    from netscope.cli.vision_inputs import start

    lm, found = start(args, classes=args.classes)
    layer = args.layer
    if args.dictionary:
        from netscope.vision.concepts.saved import load_dictionary
        from netscope.vision.concepts.tap import attach_features

        learned, meta = load_dictionary(args.dictionary, model=lm.name)
        tap = attach_features(lm.model, meta["layer"], learned, lm.preprocess.size,
                              splice=True)
        layer = layer or tap
    from netscope.files.atomic import write_bytes
    from netscope.render.concepts import concepts_png
    from netscope.vision.models.classes import resolve_class
    from netscope.vision.models.images import load_image
    from netscope.vision.models.zoo import n_classes
    from netscope.vision.units.concepts import attach_atlas, concepts

    written = []
    for i, (name, source) in enumerate(found):
        rgb = load_image(source)
        x = lm.preprocess.tensor(rgb)
        wanted = (args.classes or [None])[min(i, len(args.classes or [None]) - 1)]
        target = None if wanted is None else [resolve_class(wanted, lm.class_names,
                                                            n_classes(lm))]
        result = concepts(lm.model, x, target, layer=layer, top=args.top,
                          relevance=args.relevance, class_names=lm.class_names,
                          image=lm.preprocess.image(rgb))
        if args.atlas:
            attach_atlas(result, args.atlas, lm.name, lm.preprocess.size)
        path = write_bytes(Path(args.out) / f"concepts-{Path(name).stem}.png",
                           concepts_png(result))
        written.append(path)
        shares = ", ".join(f"{u} ({s:+.0%})" for u, _, s in
                           result.table().itertuples(index=False))
        print(f"{name}: {result.class_name}; units of {result.layer}: {shares}")
    for path in written:
        print(f"picture: {path}")
    return 0
