"""`netscope vision dictionary FOLDER --layer L`: feature directions of a layer (NMF or a
sparse autoencoder) learned from its activations across a dataset; resumable,
torchrun-ready."""

from __future__ import annotations

import sys
from pathlib import Path

from netscope.cli.common import progress_printer
from netscope.cli.options import number
from netscope.errors import NetscopeError


def add_dictionary(vs, common) -> None:
    from netscope.vision.concepts import METHODS

    p = vs.add_parser("dictionary", help="feature directions of a layer (NMF or a sparse "
                      "autoencoder) learned from its activations across a dataset: their "
                      "quality, and how many features each channel serves")
    common(p, images=False)
    p.add_argument("folder", nargs="?", help="folder tree of images (searched at any depth)")
    p.add_argument("--demo", action="store_true", help="the photos that scikit-image and "
                   "scikit-learn ship (and crops of them), EfficientNet-Lite0's _blocks.4")
    p.add_argument("--layer", help="layer name (see `netscope vision layers`); its grid "
                   "positions or tokens are the samples")
    p.add_argument("--method", choices=METHODS, default="topk-sae",
                   help="nmf (non-negative layers, CRAFT's), topk-sae, batchtopk-sae or "
                   "archetypal-sae (default: topk-sae)")
    number(p, "--features", lo=1, hi=1_000_000, default=64, help="feature directions K")
    number(p, "--top-k", lo=1, hi=1_000_000, help="SAE codes kept per sample (default K/8)")
    number(p, "--epochs", lo=1, hi=100_000, default=30, help="SAE passes over the samples "
           "(NMF: iterations; give more for NMF, e.g. 200)")
    number(p, "--lr", cast=float, lo=0, hi=10, above=True, default=1e-3,
           help="SAE learning rate (Adam)")
    number(p, "--sae-batch", lo=1, hi=1_000_000, default=64, help="samples per SAE step")
    number(p, "--positions", lo=0, hi=1_000_000, default=16,
           help="grid positions sampled per image (0: all)")
    number(p, "--crops", lo=0, hi=100_000, default=0, help="CRAFT's samples instead: every "
           "crop of this many pixels of the model's input (stride 80%%), resized to the "
           "input, its activations averaged (one sample per crop; as craft-xai)")
    number(p, "--seed", lo=0, hi=2**32 - 1, default=0, help="positions, start, batch order")
    number(p, "--batch-size", lo=1, hi=4096, default=16, help="images per forward batch")
    number(p, "--workers", lo=0, hi=256, help="decoding processes (default: the CPUs beside "
           "this one, at most 4; 0: decode in this process)")
    number(p, "--shard-size", lo=1, hi=10**7, default=256, help="images per sample shard")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_vision_dictionary, out="netscope-results/vision-dictionary")


def _vision_dictionary(args) -> int:
    from netscope.files.folders import check_writable_dir

    if not args.demo and not args.folder:
        raise NetscopeError("give a folder of images, or --demo.")
    if args.folder and not Path(args.folder).is_dir():
        raise NetscopeError(f"{args.folder}: not a folder; give the folder that holds the "
                            f"images.")
    if not args.layer and not args.demo:
        raise NetscopeError("name the layer: --layer L (see `netscope vision layers --model "
                            "...` for the names).")
    check_writable_dir(args.out)
    from netscope.cli.vision_inputs import start
    from netscope.vision.concepts.learn import LearnSettings
    from netscope.vision.concepts.make import make_dictionary
    from netscope.vision.concepts.samples import SampleSettings
    from netscope.vision.datasets.explain_run import distributed_rank
    from netscope.vision.datasets.image_files import default_workers
    from netscope.vision.units.demo import demo_folder

    rank, _ = distributed_rank()
    folder = args.folder or str(demo_folder(Path(args.out) / "demo-images"))
    layer = args.layer or "_blocks.4"
    sampling = SampleSettings(layer, args.positions, args.batch_size,
                              default_workers() if args.workers is None else args.workers,
                              args.shard_size, args.seed, args.crops)
    learning = LearnSettings(args.method, args.features, args.top_k, args.epochs,
                             args.sae_batch, args.lr, args.seed)
    sampling.check()
    lm, _ = start(args, images=False)
    say = progress_printer(args.quiet or rank > 0)
    try:
        made = make_dictionary(lm, folder, args.out, sampling, learning, say)
    except KeyboardInterrupt:
        print(f"netscope: finished shards and the last checkpoint are kept in {args.out}; run "
              f"the same command again to continue.", file=sys.stderr)
        raise
    if made is None:  # another rank merges and learns
        return 0
    from netscope.files.atomic import write_bytes
    from netscope.render.dictionary import dictionary_png

    made.files["summary.png"] = write_bytes(Path(args.out) / "summary.png", dictionary_png(
        made.learned.losses, made.quality, f"{learning.method} of {layer}"))
    q = made.quality
    print(f"{len(made.samples.x)} samples of {made.samples.x.shape[1]} channels from "
          f"{len(made.samples.files) - len(made.samples.unreadable)} images; "
          f"{learning.method}, {learning.features} features: explained variance "
          f"{q.explained_variance:.2%}, mean L0 {q.mean_l0:.2f}, {q.dead} dead, median "
          f"{q.summary()['median_features_per_channel']:.2f} features per channel")
    for name, path in made.files.items():
        print(f"{name}: {path}")
    return 0


def one_class(args, lm, x) -> tuple[int, str]:
    """The class a command explains: --class, else the images' most common top-1."""
    import numpy as np
    import torch

    from netscope.vision.models.classes import class_label, resolve_class
    from netscope.vision.models.zoo import n_classes

    if args.classes:
        target = resolve_class(args.classes[0], lm.class_names, n_classes(lm))
    else:
        with torch.no_grad():
            target = int(np.bincount(lm.model(x).argmax(-1).cpu().numpy()).argmax())
    return target, class_label(lm.class_names, target)


def add_craft(vs, common) -> None:
    p = vs.add_parser("craft", help="which dictionary features matter for a class (CRAFT: "
                      "total Sobol indices of the class score, masking features in the "
                      "layer), with each feature's map on the images")
    common(p)
    p.add_argument("--dictionary", required=True, help="a folder `netscope vision dictionary` "
                   "wrote for this model (its layer is used)")
    p.add_argument("--class", dest="classes", action="append",
                   help="class name or index (default: the images' most common top-1)")
    number(p, "--designs", lo=2, hi=4096, default=32,
           help="quasi-random designs per image (cost: designs x (features + 2) passes)")
    number(p, "--top", lo=1, hi=64, default=5, help="features drawn per image")
    p.set_defaults(func=_vision_craft, out="netscope-results/vision-craft")


def _vision_craft(args) -> int:
    if args.classes and len(args.classes) > 1:
        raise NetscopeError("CRAFT explains one class at a time: give --class once.")
    from netscope.cli.vision_inputs import start

    lm, found = start(args, classes=args.classes)
    import numpy as np
    import torch

    from netscope.files.atomic import write_bytes, write_text
    from netscope.render.dictionary import craft_png
    from netscope.render.table import csv_text
    from netscope.vision.concepts.craft import class_importance
    from netscope.vision.concepts.saved import load_dictionary
    from netscope.vision.models.images import load_image

    learned, meta = load_dictionary(args.dictionary, model=lm.name)
    if not found:
        raise NetscopeError("give the images to explain (files, folders or sample names).")
    images = [(name, load_image(source)) for name, source in found]
    x = torch.cat([lm.preprocess.tensor(rgb) for _, rgb in images])
    target, name = one_class(args, lm, x)
    say = progress_printer(False)
    say(f"craft: {len(images)} image(s), {name}, {meta['features']} features of "
        f"{meta['layer']}, {args.designs} designs: "
        f"{len(images) * args.designs * (meta['features'] + 2)} forward passes")
    got = class_importance(lm.model, meta["layer"], learned, x, target, args.designs)
    from netscope.vision.concepts.intervene import ablate

    effect = np.array([ablate(lm.model, meta["layer"], learned, x, [k]).effect(target).mean()
                       for k in range(meta["features"])])  # the check: remove each feature
    out = Path(args.out)
    rows = [{"rank": r + 1, "feature": int(k), "importance": float(got.importance[k]),
             "ablation_effect": float(effect[k]),
             **{f"image{i}": float(got.per_image[i, k]) for i in range(len(images))}}
            for r, k in enumerate(got.ranked())]
    table = write_text(out / "importance.csv", csv_text(rows))
    shown = [(n, lm.preprocess.image(rgb)) for n, rgb in images]
    picture = write_bytes(out / "craft.png", craft_png(shown, got, name, args.top))
    best = ", ".join(f"{int(k)} ({got.importance[k]:.3f}, removing it: {effect[k]:+.3g})"
                     for k in got.ranked()[:args.top])
    print(f"{name}: features by total Sobol index (and the class score's change when the "
          f"feature is removed from the layer): {best}")
    if len(effect) > 2 and np.std(got.importance) > 0 and np.std(effect) > 0:
        from scipy.stats import spearmanr

        rho = spearmanr(got.importance, -effect).statistic
        print(f"rank correlation of importance with the score lost by removing the feature: "
              f"{rho:+.2f}")
    print(f"importance.csv: {table}\ncraft.png: {picture}")
    return 0
