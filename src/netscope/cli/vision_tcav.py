"""`netscope vision tcav IMAGES --concept DIR --random DIR --random DIR --layers L --class C`:
does a concept, given as example images, raise a class's score (TCAV)?"""

from __future__ import annotations

from pathlib import Path

from netscope.cli.common import progress_printer
from netscope.cli.options import number
from netscope.errors import NetscopeError


def add_tcav(vs, common) -> None:
    p = vs.add_parser("tcav", help="concept activation vectors: does a concept (a folder of "
                      "example images) raise a class's score? TCAV scores with the paper's "
                      "significance test against random image sets")
    common(p)
    p.add_argument("--concept", action="append", required=True, metavar="DIR",
                   help="a folder of images showing a concept (repeat for several)")
    p.add_argument("--random", action="append", required=True, metavar="DIR",
                   help="a folder of random images (give at least two)")
    p.add_argument("--layers", required=True, help="comma-separated layer names")
    p.add_argument("--class", dest="classes", action="append", required=True,
                   help="the class whose score is tested (name or index)")
    number(p, "--seed", lo=0, hi=2**32 - 1, default=0, help="classifier splits and starts")
    p.set_defaults(func=_vision_tcav, out="netscope-results/vision-tcav")


def _folder_images(lm, folder: str):
    import torch

    from netscope.vision.concepts.tcav import check_examples
    from netscope.vision.datasets.image_files import dataset_files
    from netscope.vision.models.images import load_image

    if not Path(folder).is_dir():
        raise NetscopeError(f"{folder}: not a folder of images.")
    tensors = []
    for name in dataset_files(folder):
        try:
            tensors.append(lm.preprocess.tensor(load_image(Path(folder) / name)))
        except NetscopeError:
            continue  # unreadable: not counted
    check_examples(folder, len(tensors))
    return torch.cat(tensors)


def _vision_tcav(args) -> int:
    if len(args.classes) > 1:
        raise NetscopeError("TCAV tests one class at a time: give --class once.")
    for folder in [*args.concept, *args.random]:
        if not Path(folder).is_dir():
            raise NetscopeError(f"{folder}: not a folder of images.")
    if len(args.random) < 2:
        raise NetscopeError("give at least two --random folders: the significance test "
                            "compares the concept with random sets against each other.")
    layers = [x.strip() for x in args.layers.split(",") if x.strip()]
    from netscope.cli.vision_inputs import start

    lm, found = start(args, classes=args.classes)
    import torch

    from netscope.files.atomic import write_bytes, write_text
    from netscope.render.dictionary import tcav_png
    from netscope.render.table import csv_text
    from netscope.vision.concepts.tcav import class_gradients, concept_test, layer_vectors
    from netscope.vision.models.classes import class_label, resolve_class
    from netscope.vision.models.images import load_image
    from netscope.vision.models.zoo import n_classes

    if not found:
        raise NetscopeError("give the images of the class to test (files or folders).")
    target = resolve_class(args.classes[0], lm.class_names, n_classes(lm))
    x = torch.cat([lm.preprocess.tensor(load_image(source)) for _, source in found])
    say = progress_printer(False)
    concepts = {Path(c).name: _folder_images(lm, c) for c in args.concept}
    randoms = [_folder_images(lm, r) for r in args.random]
    results, rows = [], []
    for layer in layers:
        say(f"tcav: layer {layer}")
        grads = class_gradients(lm.model, layer, x, target)
        random_acts = [layer_vectors(lm.model, layer, r) for r in randoms]
        for name, images in concepts.items():
            test = concept_test(name, layer, grads, layer_vectors(lm.model, layer, images),
                                random_acts, args.seed)
            results.append(test)
            rows.append({"concept": name, "layer": layer, "tcav_score": test.score,
                         "scores": " ".join(f"{s:.3f}" for s in test.scores),
                         "random_scores": " ".join(f"{s:.3f}" for s in test.random_scores),
                         "p_value": test.p_value, "significant": test.significant,
                         "magnitude": float(sum(test.magnitudes) / len(test.magnitudes)),
                         "cav_accuracy": float(sum(test.accuracies) / len(test.accuracies))})
    label = class_label(lm.class_names, target)
    out = Path(args.out)
    table = write_text(out / "tcav.csv", csv_text(rows))
    picture = write_bytes(out / "tcav.png", tcav_png(results, label))
    for t in results:
        mark = "significant" if t.significant else "not significant"
        print(f"{t.concept} @ {t.layer}: TCAV score {t.score:.2f} for {label} (random sets: "
              f"{sum(t.random_scores) / len(t.random_scores):.2f}; p = {t.p_value:.3g}, "
              f"{mark})")
    print(f"tcav.csv: {table}\ntcav.png: {picture}")
    return 0
