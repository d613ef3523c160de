"""`netscope vision circuit IMAGES --layers L1,L2 --class C`: the circuit of a class (units or
dictionary features, the attributions between them, expanded weights where layers are
linearly joined), each claim checked by intervention (--validate), drawn as a picture and
as a page that joins an atlas site (--atlas)."""

from __future__ import annotations

from pathlib import Path

from netscope.cli.common import progress_printer
from netscope.cli.options import number
from netscope.cli.vision_dictionary import one_class
from netscope.errors import NetscopeError


def add_circuit(vs, common) -> None:
    from netscope.vision.concepts import ABLATIONS
    from netscope.vision.units import RELEVANCE

    p = vs.add_parser("circuit", help="the circuit of a class on images: units or dictionary "
                      "features of the chosen layers, the attributions between them, and "
                      "(--validate) each claim checked by intervention")
    common(p)
    p.add_argument("--layers", required=True, help="comma-separated layers, in the order the "
                   "network runs them (features_LAYER for a --dictionary's features)")
    p.add_argument("--dictionary", action="append", metavar="DIR",
                   help="a dictionary of this model: its features become the layer "
                   "features_LAYER, spliced into the network (repeat for several)")
    p.add_argument("--class", dest="classes", action="append",
                   help="class name or index (default: the images' most common top-1)")
    number(p, "--top", lo=1, hi=256, default=6, help="nodes kept per layer")
    p.add_argument("--relevance", choices=RELEVANCE, default="gradient", help="gradient: "
                   "nodes and edges by activation x gradient (first-order parts of the "
                   "score); lrp: by LRP relevance and concept-conditional relevance (CRP, "
                   "zennit-crp's attribution graph), epsilon-plus")
    number(p, "--share", cast=float, lo=0, hi=1, default=0.05,
           help="edges below this share of the layer pair's largest are dropped")
    p.add_argument("--validate", action="store_true", help="change each node (and each "
                   "layer's nodes outside the graph) and compare the class score's and the "
                   "later nodes' changes with the attributions' predictions, image by image")
    p.add_argument("--ablation", choices=ABLATIONS, default="zero", help="how --validate "
                   "changes a node: zero (remove it), mean (its mean over the --reference "
                   "images, default the explained ones) or patch (its value on the "
                   "--reference images, default each explained image's predecessor)")
    p.add_argument("--reference", nargs="+", metavar="IMAGE", help="images (files, folders "
                   "or samples) --ablation mean averages over or patch takes nodes from")
    number(p, "--check-batch", lo=1, hi=100_000, default=16, help="images per forward pass "
           "when --validate stacks its interventions (default 16: on a CPU larger batches "
           "cost more per image; give more on a GPU)")
    p.add_argument("--atlas", help="an atlas folder of the same model (`vision atlas`): the "
                   "circuit's page joins its site (circuits/CLASS.html, listed on its index) "
                   "and each node shows its picture and opens its unit or feature page")
    p.set_defaults(func=_vision_circuit, out="netscope-results/vision-circuit")


def _vision_circuit(args) -> int:
    import json

    if args.classes and len(args.classes) > 1:
        raise NetscopeError("a circuit is drawn for one class: give --class once.")
    from netscope.cli.vision_inputs import sources, start

    if args.atlas:
        _check_atlas(args.atlas)  # before the model loads

    if (args.reference or args.ablation != "zero") and not args.validate:
        raise NetscopeError("--ablation and --reference choose how --validate checks the "
                            "circuit: add --validate.")
    if args.relevance == "lrp" and args.ablation != "zero":
        raise NetscopeError("an LRP circuit claims what removing a node takes away: check it "
                            "with --ablation zero, or use --relevance gradient to check "
                            "replacements.")
    reference = sources(args, args.reference) if args.reference else []
    lm, found = start(args, classes=args.classes)
    if args.atlas:
        _check_atlas(args.atlas, lm.name)
    import torch

    from netscope.files.atomic import write_bytes, write_text
    from netscope.render.circuit import circuit_html, circuit_png, expanded_png
    from netscope.vision.concepts.circuit import class_circuit
    from netscope.vision.concepts.circuit_checks import validate
    from netscope.vision.concepts.saved import load_dictionary
    from netscope.vision.concepts.tap import attach_features
    from netscope.vision.models.images import load_image

    if not found:
        raise NetscopeError("give the images (files, folders or sample names).")
    names = {}
    for folder in args.dictionary or []:
        learned, meta = load_dictionary(folder, model=lm.name)
        names[attach_features(lm.model, meta["layer"], learned, lm.preprocess.size,
                              splice=True)] = "feature"
    layers = [x.strip() for x in args.layers.split(",") if x.strip()]
    x = torch.cat([lm.preprocess.tensor(load_image(source)) for _, source in found])
    target, name = one_class(args, lm, x)
    say = progress_printer(False)
    say(f"circuit: {name} on {len(x)} image(s) through {', '.join(layers)} "
        f"({args.relevance})")
    circuit = class_circuit(lm.model, x, target, layers, args.top, args.share,
                            relevance=args.relevance)
    if args.validate:
        say(f"circuit: checking each node and edge by intervention ({args.ablation})")
        source = (torch.cat([lm.preprocess.tensor(load_image(s)) for _, s in reference])
                  if reference else None)
        validate(lm.model, x, circuit, args.ablation, source, args.check_batch)
    out = Path(args.out)
    doc = write_text(out / "circuit.json", json.dumps(circuit.as_dict(), indent=1))
    picture = write_bytes(out / "circuit.png", circuit_png(circuit, name, names))
    kernels = expanded_png(circuit, names)
    if kernels is not None:
        write_bytes(out / "expanded_weights.png", kernels)
    page = write_text(out / "circuit.html", circuit_html(
        circuit, name, _atlas_pages(circuit, args.atlas, out) if args.atlas else None))
    _say_circuit(circuit, name)
    if args.atlas:
        in_site = link_circuit(args.atlas, lm.name, name, circuit)
        print(f"in the atlas site: {in_site}")
    print(f"circuit.json: {doc}\ncircuit.png: {picture}\ncircuit.html: {page}"
          + (f"\nexpanded_weights.png: {out / 'expanded_weights.png'}" if kernels else ""))
    return 0


def _say_circuit(circuit, name: str) -> None:
    print(f"{name}: {sum(len(v) for v in circuit.nodes.values())} nodes, "
          f"{len(circuit.edges)} edges")
    for (a, b), e in circuit.expanded.items():
        if e.linear:
            print(f"{a} -> {b}: only linear operations between them; expanded weights kept")
    if circuit.checks:
        c = circuit.checks
        done = ", ".join(f"{k} {v:.0%}" for k, v in c["completeness"].items())
        print(f"changing each node ({c['ablation']}): correlation of measured with predicted "
              f"change, image by image, {c['correlation']:+.2f}, wrong sign: "
              f"{', '.join(c['wrong_sign']) or 'none'}; edges: correlation "
              f"{c['edge_correlation']:+.2f}, wrong sign: "
              f"{', '.join(c['edges_wrong_sign']) or 'none'}; score kept with only the "
              f"graph's nodes: {done} ({c['forward_passes']} forward passes, "
              f"{c['images_forwarded']} images)")


def _check_atlas(atlas: str, model: str | None = None) -> None:
    import json

    if not (Path(atlas) / "index.html").is_file() or not (Path(atlas) / RUN_FILE).is_file():
        raise NetscopeError(f"{atlas}: not an atlas folder (no index.html and {RUN_FILE}); "
                            f"give the --out folder of `netscope vision atlas`.")
    made_for = json.loads((Path(atlas) / RUN_FILE).read_text()).get("model")
    if model is not None and made_for != model:
        raise NetscopeError(f"{atlas} is an atlas of {made_for}, the circuit is of {model}; "
                            f"give an atlas of the same model.")


def _atlas_pages(circuit, atlas: str, page_dir: Path) -> dict:
    """(layer, node) -> (its atlas page, its picture), relative to ``page_dir``, for the
    nodes the atlas has pages for."""
    import os

    from netscope.vision.units.atlas import layer_slug

    pages = {}
    for name in circuit.layers:
        folder = Path(atlas) / layer_slug(name)
        for j in (int(u) for u in circuit.nodes[name]):
            if not (folder / f"{j}.html").is_file():
                continue
            picture = next((folder / "img" / f for f in (f"u{j}-main0.png", f"u{j}-p0.jpg")
                            if (folder / "img" / f).is_file()), None)
            rel = lambda p: os.path.relpath(p, page_dir)  # noqa: E731
            pages[(name, j)] = (rel(folder / f"{j}.html"), rel(picture) if picture else None)
    return pages


def link_circuit(atlas: str, model: str, class_name: str, circuit) -> Path:
    """Write the circuit's page into the atlas site (circuits/SLUG.html) and list every
    circuit page there on the site's index; the index is rewritten atomically."""
    import json
    import re

    from netscope.files.atomic import write_text
    from netscope.render.circuit import circuit_html, circuits_list
    from netscope.vision.units.atlas import layer_slug

    root = Path(atlas)
    _check_atlas(atlas, model)
    folder = root / "circuits"
    slug = layer_slug(class_name)
    page = write_text(folder / f"{slug}.html", circuit_html(
        circuit, class_name, _atlas_pages(circuit, atlas, folder), home="../index.html"))
    listed_path = folder / "circuits.json"
    listed = json.loads(listed_path.read_text()) if listed_path.is_file() else {}
    listed[slug] = class_name
    write_text(listed_path, json.dumps(listed, indent=1, sort_keys=True))
    block = (MARK + circuits_list([(listed[k], f"circuits/{k}.html") for k in sorted(listed)])
             + END)
    index = (root / "index.html").read_text()
    if MARK in index and END in index:
        index = re.sub(re.escape(MARK) + ".*?" + re.escape(END), lambda _: block, index,
                       flags=re.S)
    else:  # an atlas made before circuits could join it
        index = index.replace("</body>", block + "</body>")
    write_text(root / "index.html", index)
    return page


MARK, END = "<!--circuits-->", "<!--/circuits-->"
RUN_FILE = "atlas-run.json"
