"""`netscope vision filters|classes`: pictures that excite filters or classes."""

from __future__ import annotations

import argparse

from netscope.cli.common import progress_printer
from netscope.cli.options import Number, number
from netscope.cli.vision_inputs import start
from netscope.vision.features.presets import PRESETS


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


def add_ascent(vs, common) -> None:
    """The two gradient-ascent commands, sharing their settings."""
    for name, helptext in (("filters", "pictures that excite filters (gradient ascent)"),
                           ("classes", "pictures that excite classes (Simonyan et al. 2013)")):
        p = vs.add_parser(name, help=helptext)
        common(p, images=False)
        if name == "filters":
            p.add_argument("--layer", required=True)
            p.add_argument("--channels", type=_channels, default=list(range(16)))
            p.add_argument("--objective", choices=["mean", "center"], default="mean",
                           help="maximize the channel's mean (default) or its centre unit")
        else:
            p.add_argument("targets", nargs="+", help="class names or indices")
            number(p, "--l2", cast=float, lo=0, hi=1e6, default=1e-3,
                   help="L2 penalty on the picture")
        p.add_argument("--param", choices=["pixel", "fourier"], default="pixel",
                       help="optimize the pixels (default) or scaled Fourier coefficients in "
                       "a decorrelated colour basis (smoother, more natural pictures)")
        for flag, check, what in (
                ("--steps", Number(int, 1, 100_000), "ascent steps"),
                ("--lr", Number(float, 0, 1e6, above=True), "step on the RMS-normalized gradient"),
                ("--jitter", Number(int, 0, 1024), "max random shift per step, pixels"),
                ("--blur-every", Number(int, 0, 100_000),
                 "Gaussian blur every N steps, 0: never (pixel only)"),
                ("--rotate", Number(float, 0, 180), "max random rotation per step, degrees"),
                ("--scale-jitter", Number(float, 0, 0.9),
                 "max random relative rescaling per step")):
            defaults = ", ".join(f"{k} {v[flag.lstrip('-').replace('-', '_')]}"
                                 for k, v in PRESETS.items())
            number(p, flag, check=check, help=f"{what}; default by --param: {defaults}")
        number(p, "--size", lo=16, hi=4096, default=128, help="picture side in pixels")
        number(p, "--tv", cast=float, lo=0, hi=1e6, default=0.0, help="total-variation weight")
        number(p, "--octaves", lo=1, hi=8, default=1, help="pixel parametrization only")
        number(p, "--seed", lo=0, hi=2**32 - 1, default=0)
        p.add_argument("--quiet", action="store_true", help="no progress lines")
        p.set_defaults(func=_vision_ascent)


def _vision_ascent(args) -> int:
    from netscope.render.vision_report import slug, write_gallery
    from netscope.vision.features.ascent import AscentConfig, visualize_classes, visualize_filters
    from netscope.vision.models.classes import resolve_class
    from netscope.vision.models.zoo import n_classes
    from netscope.vision.report import as_numpy_images

    lm, _ = start(args, images=False, classes=getattr(args, "targets", None))
    say = progress_printer(args.quiet)

    def progress(done: int, total: int, values) -> None:
        if done == 1 or done == total or done % max(1, total // 10) == 0:
            say(f"step {done}/{total}: mean objective {float(values.mean()):.3f}")

    common = {k: getattr(args, k) if getattr(args, k) is not None else v
              for k, v in PRESETS[args.param].items()}
    common.update(size=args.size, tv=args.tv, octaves=args.octaves, seed=args.seed,
                  param=args.param)
    if args.action == "filters":
        res = visualize_filters(lm.model, args.layer, args.channels, lm.preprocess,
                                AscentConfig(**common), objective=args.objective,
                                progress=progress)
        title = f"Filters of {args.layer}"
        stem = f"filters_{slug(args.layer)}" + ("_center" if args.objective == "center" else "")
        what = ("the activation of one channel's centre unit" if args.objective == "center"
                else "the mean activation of one channel")
        note = (f"Each picture maximizes {what} by gradient ascent from a nearly grey start, "
                "with RMS-normalized gradient steps.")
    else:
        n_out = n_classes(lm)
        classes = [resolve_class(c, lm.class_names, n_out) for c in args.targets]
        res = visualize_classes(lm.model, classes, lm.preprocess,
                                AscentConfig(l2=args.l2, **common), lm.class_names,
                                progress=progress)
        title = "Class visualizations"
        stem = slug("classes_" + "_".join(slug(r) for r in res.labels))
        note = ("Each picture maximizes one class logit minus an L2 penalty on the image "
                "(Simonyan et al. 2013), with RMS-normalized gradient steps.")
    if args.param == "fourier":
        note += (" The parameters are 1/frequency-scaled Fourier coefficients in a decorrelated "
                 "colour basis (Olah et al. 2017), squashed into [0, 1] by a sigmoid.")
    gain = (res.history[-1] - res.history[0]).tolist()
    path = write_gallery(as_numpy_images(res.images), res.labels, title,
                         note + " Settings: " + ", ".join(f"{k.replace('_', '-')} {v}"
                                                          for k, v in common.items()) + ".",
                         args.out, stem)
    for label, g in zip(res.labels, gain, strict=True):
        print(f"{label}: objective +{g:.3f} over {len(res.history)} steps")
    print(f"wrote {path}")
    return 0
