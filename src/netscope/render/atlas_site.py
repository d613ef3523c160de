"""The atlas as a static site that works from ``file://``: an index of layers, a page per
layer (every unit as a tile, sortable, the correlation heat map in cluster order) and a
page per unit at a stable address (``LAYER/UNIT.html``). Pictures are small files beside
the pages (JPEG thumbnails, PNG visualizations), not inlined, so pages load fast.

``write_site`` hands every file to ``emit(relative path, bytes)``; the caller decides how
files are written (atomically). Patches come from ``view(image index)``: the RGB picture
the model saw, asked for once per image; ``grids(that picture)``, when given, is each layer's
(units, h, w) activation grid on that image, drawn over each patch as where the unit fires.
"""

from __future__ import annotations

import html
import io
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from netscope.render.heatmap import colorize, overlay
from netscope.vision.units.atlas import layer_slug as slug
from netscope.vision.units.fire_maps import pixel_map

THUMB = 96  # patch thumbnails, pixels
STYLE = """<style>
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1100px;color:#222}
a{color:#0645ad}img{image-rendering:auto}.tiles{display:flex;flex-wrap:wrap;gap:8px}
.tile{border:1px solid #ccc;padding:4px;font-size:12px;text-align:center;width:200px}
.tile img{width:96px;height:96px}.row img{width:96px;height:96px;margin:2px}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:2px 8px;
text-align:left}.note{color:#555;font-size:13px}button{margin-right:6px}
</style>"""
SORT_SCRIPT = """<script>
function sortTiles(key, desc){const box=document.getElementById('tiles');
const tiles=[...box.children];tiles.sort((a,b)=>{const x=parseFloat(a.dataset[key]),
y=parseFloat(b.dataset[key]);return desc?y-x:x-y;});tiles.forEach(t=>box.appendChild(t));}
</script>"""


def _page(title: str, body: str, depth: int) -> bytes:
    home = "../" * depth + "index.html"
    back = f"<p><a href='{home}'>atlas index</a></p>" if depth else ""  # not on the index
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title>{STYLE}</head><body>{back}"
            f"<h1>{html.escape(title)}</h1>{body}</body></html>").encode()


def _jpeg(rgb: np.ndarray, size: int | None = None) -> bytes:
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
                          if rgb.dtype != np.uint8 else rgb)
    if size is not None:
        img = img.resize((size, size), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)).save(buf, "PNG",
                                                                                optimize=True)
    return buf.getvalue()


def crop(view: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The box of ``view`` (H, W, 3), grey where it lies outside the image; a field larger
    than the image along an axis shows that whole axis instead."""
    h, w = view.shape[:2]
    top, left, bottom, right = box
    if bottom - top > h:
        top, bottom = 0, h
    if right - left > w:
        left, right = 0, w
    out = np.full((bottom - top, right - left, 3), 0.5, np.float32)
    y0, y1, x0, x1 = max(top, 0), min(bottom, h), max(left, 0), min(right, w)
    if y1 > y0 and x1 > x0:
        out[y0 - top:y1 - top, x0 - left:x1 - left] = view[y0:y1, x0:x1]
    return out


def write_site(atlas, emit: Callable[[str, bytes], None], view: Callable[[int], np.ndarray],
               class_names: Sequence[str] | None = None,
               progress: Callable[[str], None] | None = None,
               grids: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
               tables: Sequence[str] = ()) -> list[str]:
    """Every page and picture of the site (see the module docstring); returns the pages."""
    say = progress or (lambda message: None)
    examples = atlas.examples()
    relevant = atlas.examples("relevance") if atlas.relevance else examples.iloc[:0]
    _write_patches(atlas, examples, relevant, emit, view, say, grids)
    pages = ["index.html"]
    emit("index.html", _index(atlas, tables))
    for name, la in atlas.layers.items():
        s = slug(name)
        stats = la.statistics()
        emit(f"{s}/correlation.png", _correlation_png(la.correlation, la.order))
        for kind, pics in la.pictures.items():
            for u in range(la.units):
                for j, pic in enumerate(pics[u] if kind == "diverse" else pics[u:u + 1]):
                    emit(f"{s}/img/u{u}-{kind}{j}.png", _png(pic.transpose(1, 2, 0)))
        emit(f"{s}/index.html", _layer_page(atlas, la, stats))
        pages.append(f"{s}/index.html")
        rows = examples[examples["layer"] == name]
        used = relevant[relevant["layer"] == name]
        for u in range(la.units):
            emit(f"{s}/{u}.html", _unit_page(atlas, la, u, stats, rows[rows["unit"] == u],
                                             class_names, grids is not None,
                                             used[used["unit"] == u]))
            pages.append(f"{s}/{u}.html")
        say(f"atlas site: layer {name}, {la.units} unit pages")
    return pages


def _write_patches(atlas, examples, relevant, emit, view, say, grids) -> None:
    """Each strongest image's patch (-p) and where the unit fires in it (-f), and each most
    relevant image's patch (-r), every image read once."""
    by_image = defaultdict(list)
    index = {f: i for i, f in enumerate(atlas.files)}
    for kind, frame in (("p", examples), ("r", relevant)):
        for row in frame.itertuples(index=False):
            by_image[index[row.file]].append((kind, row))
    for done, i in enumerate(sorted(by_image)):
        picture = view(i)
        emit(f"images/{i}.jpg", _jpeg(picture))
        layer_grids = grids(picture) if grids is not None else None
        for kind, row in by_image[i]:
            box = (row.top, row.left, row.bottom, row.right)
            name = f"{slug(row.layer)}/img/u{row.unit}"
            emit(f"{name}-{kind}{row.rank}.jpg", _jpeg(crop(picture, box), THUMB))
            if layer_grids is not None and kind == "p":
                la = atlas.layers[row.layer]
                fired = fire_overlay(picture, layer_grids[row.layer][row.unit], la.field)
                emit(f"{name}-f{row.rank}.jpg", _jpeg(crop(fired, box), THUMB))
        if done % 50 == 49:
            say(f"atlas site: patches of {done + 1}/{len(by_image)} images")


def fire_overlay(picture: np.ndarray, grid: np.ndarray, field) -> np.ndarray:
    """The picture with the unit's positive activation over it (jet, scaled to its largest
    value on this image)."""
    fired = np.maximum(pixel_map(grid, field, picture.shape[0]), 0)
    top = fired.max()
    return overlay(picture, fired / top if top > 0 else fired)


def _correlation_png(corr: np.ndarray, order: np.ndarray) -> bytes:
    ordered = corr[np.ix_(order, order)]
    rgb = colorize(0.5 + 0.5 * ordered, "RdBu_r")
    scale = max(1, 400 // max(len(order), 1))
    return _png(np.repeat(np.repeat(rgb, scale, 0), scale, 1))


STRIP = 12  # units shown per layer on the index


def _index(atlas, tables: Sequence[str] = ()) -> bytes:
    rows = "".join(
        f"<tr><td><a href='{slug(n)}/index.html'>{html.escape(n)}</a></td><td>{la.units}</td>"
        f"<td>{la.grid[0]}x{la.grid[1]}</td><td>{la.field.method}, "
        f"{la.field.size[0]:.0f}x{la.field.size[1]:.0f} px</td></tr>"
        for n, la in atlas.layers.items())
    strips = "".join(
        f"<h2><a href='{slug(n)}/index.html'>{html.escape(n)}</a></h2><div class='row'>"
        + "".join(f"<a href='{slug(n)}/{u}.html' title='unit {u}'>"
                  f"{_thumb(la, u, slug(n) + '/')}</a>" for u in la.order[:STRIP])
        + (f" <a href='{slug(n)}/index.html'>all {la.units}</a>" if la.units > STRIP else "")
        + "</div>" for n, la in atlas.layers.items())
    bad = len(atlas.unreadable)
    listed = (f"Tables: {', '.join(html.escape(t) for t in tables)}." if tables else "")
    unread = (f" ({bad} unreadable, listed in the files table)" if bad else "")
    body = (f"<p>Model {html.escape(atlas.model)}, input {atlas.size}x{atlas.size}, "
            f"{len(atlas.files) - bad} images{unread}. {listed}</p>"
            f"<table><tr><th>layer</th><th>units</th><th>grid</th><th>receptive field</th>"
            f"</tr>{rows}</table><p class='note'>geometry: computed from the kernels, strides, "
            f"paddings and dilations on the path; effective: where the gradient of the centre "
            f"unit is at least 1% of its largest value.</p>"
            f"<!--circuits--><!--/circuits-->"  # `vision circuit --atlas` lists its pages here
            f"<p class='note'>The first {STRIP} units of each layer in cluster order (alike "
            f"units side by side): feature visualization where made, else strongest patch."
            f"</p>{strips}")
    return _page("netscope unit atlas", body, 0)


def _thumb(la, u: int, prefix: str = "") -> str:
    picture = f"img/u{u}-main0.png" if "main" in la.pictures else f"img/u{u}-p0.jpg"
    return f"<img src='{prefix}{picture}' alt='unit {u}'>"


def _tile_picture(la, u: int) -> str:
    if "main" in la.pictures:
        return f"<img src='img/u{u}-main0.png' alt='unit {u} visualization'>"
    return ""


def _layer_page(atlas, la, stats) -> bytes:
    position = np.empty(la.units, np.int64)
    position[la.order] = np.arange(la.units)
    tiles = "".join(
        f"<div class='tile' data-unit='{u}' data-fires='{stats['fires'][u]:.6f}' "
        f"data-sparse='{stats['sparseness'][u]:.6f}' data-cluster='{position[u]}'>"
        f"<a href='{u}.html'>{_tile_picture(la, u)}"
        f"<img src='img/u{u}-p0.jpg' alt='unit {u} strongest patch'><br>unit {u}</a><br>"
        f"fires {stats['fires'][u]:.0%}, sparseness {stats['sparseness'][u]:.2f}</div>"
        for u in range(la.units))
    buttons = ("<p>Sort: <button onclick=\"sortTiles('unit',false)\">unit</button>"
               "<button onclick=\"sortTiles('fires',true)\">firing share</button>"
               "<button onclick=\"sortTiles('sparse',true)\">selectivity</button>"
               "<button onclick=\"sortTiles('cluster',false)\">cluster order</button></p>")
    body = (f"<p>{la.units} units on a {la.grid[0]}x{la.grid[1]} grid; receptive field "
            f"{la.field.method}, {la.field.size[0]:.0f}x{la.field.size[1]:.0f} px. Each tile: "
            f"the unit's feature visualization (when made) beside its strongest patch.</p>"
            f"{_signed_note(stats)}"
            f"{buttons}<div class='tiles' id='tiles'>{tiles}</div>"
            f"<h2>Unit correlations (cluster order)</h2><p class='note'>Pearson correlation "
            f"of the units' spatially pooled activations over the dataset; red +1, blue -1."
            f"</p><img src='correlation.png' alt='correlation heat map' "
            f"style='max-width:600px'>{SORT_SCRIPT}")
    return _page(f"layer {la.name}", body, 1)


def _signed_note(stats) -> str:
    """On a layer whose outputs are signed (no ReLU after it: some unit's mean is below
    0, which a rectified layer's cannot be), "fires" (a maximum above 0) says little."""
    if not (np.asarray(stats["mean_pooled"]) < 0).any():
        return ""
    return ("<p class='note'>This layer's outputs are signed (some units average below 0: "
            "no ReLU after it), so \"fires\" (the unit's maximum above 0 on an image) is near "
            "100% and says little here; the histogram of maxima and the strongest images say "
            "more.</p>")


def _histogram_svg(edges: np.ndarray, counts: np.ndarray) -> str:
    width, height = 360, 90
    top = max(int(counts.max()), 1)
    bars = "".join(
        f"<rect x='{i * width / len(counts):.1f}' y='{height - c / top * height:.1f}' "
        f"width='{max(width / len(counts) - 1, 1):.1f}' height='{c / top * height:.1f}' "
        f"fill='#4a78b5'><title>{edges[i]:.3g} to {edges[i + 1]:.3g}: {c}</title></rect>"
        for i, c in enumerate(counts))
    return (f"<svg width='{width}' height='{height + 16}' role='img'>{bars}"
            f"<text x='0' y='{height + 13}' font-size='11'>{edges[0]:.3g}</text>"
            f"<text x='{width}' y='{height + 13}' font-size='11' text-anchor='end'>"
            f"{edges[-1]:.3g}</text></svg>")


def _unit_page(atlas, la, u: int, stats, rows, class_names, fires: bool,
               relevant=None) -> bytes:
    index = {f: i for i, f in enumerate(atlas.files)}
    patches = "".join(
        f"<a href='../images/{index[r.file]}.jpg' title='{html.escape(r.file)}: "
        f"{r.activation:.3g} at ({r.y}, {r.x})'><img src='img/u{u}-p{r.rank}.jpg' "
        f"alt='patch {r.rank}'></a>" for r in rows.itertuples(index=False))
    fired = "".join(
        f"<img src='img/u{u}-f{r.rank}.jpg' alt='where it fires in patch {r.rank}'>"
        for r in rows.itertuples(index=False)) if fires else ""
    padded = " Some patches reach past the image edge (grey)." if rows["padded"].any() else ""
    pictures = ""
    if "main" in la.pictures:
        pictures += (f"<h2>Feature visualization</h2><div class='row'>"
                     f"<img src='img/u{u}-main0.png' alt='visualization'></div>")
    if "diverse" in la.pictures:
        pictures += ("<h2>Diversity set</h2><div class='row'>" + "".join(
            f"<img src='img/u{u}-diverse{j}.png' alt='diverse {j}'>"
            for j in range(len(la.pictures["diverse"][u]))) + "</div>")
    facts = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in (
        ("images", la.state.n), ("mean of the maximum", f"{stats['mean'][u]:.4g}"),
        ("largest", f"{stats['max'][u]:.4g}"), ("fires on", f"{stats['fires'][u]:.1%}"),
        ("lifetime sparseness", f"{stats['sparseness'][u]:.3f}"),
        ("top 1% share", f"{stats['top1_share'][u]:.1%}")))
    edges, counts = la.histogram(u)
    body = (f"{pictures}<h2>Strongest images</h2><p class='note'>The patch each sees "
            f"(receptive field {la.field.method}, {la.field.size[0]:.0f}x"
            f"{la.field.size[1]:.0f} px); click for the whole image.{padded}</p>"
            f"<div class='row'>{patches}</div>"
            + (f"<p class='note'>Where the unit fires in each patch (its activation on that "
               f"image, scaled to its largest value there)</p><div class='row'>{fired}</div>"
               if fired else "")
            + _relevant(atlas, u, relevant)
            + f"<h2>Over the dataset</h2>{_signed_note(stats)}<table>{facts}</table>"
            f"<p>Histogram of the unit's maximum per image</p>{_histogram_svg(edges, counts)}"
            f"{_similar(la, u)}{_direction(atlas, la, u)}{_takes_part(atlas, la, u)}"
            f"{_inputs(la, u)}{_outputs(atlas, la, u)}"
            f"{_classes(la, u, class_names)}")
    return _page(f"layer {la.name}, unit {u}", body, 1)


def _relevant(atlas, u: int, rows) -> str:
    """The images the unit is most used for (relevance maximization)."""
    if not atlas.relevance:
        return ""
    how = {"lrp": "LRP (epsilon-plus)", "gradient": "activation x gradient"}.get(
        atlas.relevance_how or "", atlas.relevance_how or "")
    note = (f"Ranked by the unit's share of the relevance of the image's predicted class "
            f"at this layer ({html.escape(how)}; relevance maximization, as zennit-crp's "
            f"reference images): the images the unit is used for, not only those it fires "
            f"on. The patch is centred where its relevance is largest.")
    if rows is None or rows.empty or not (rows["relevance"] > 0).any():
        return (f"<h2>Most relevant images</h2><p class='note'>{note}</p><p>No image: the "
                f"unit takes no positive share of any image's class relevance.</p>")
    index = {f: i for i, f in enumerate(atlas.files)}
    shown = rows[rows["relevance"] > 0]
    patches = "".join(
        f"<a href='../images/{index[r.file]}.jpg' title='{html.escape(r.file)}: share "
        f"{r.relevance:.3g} at ({r.y}, {r.x})'><img src='img/u{u}-r{r.rank}.jpg' "
        f"alt='relevant patch {r.rank}'></a>" for r in shown.itertuples(index=False))
    return (f"<h2>Most relevant images</h2><p class='note'>{note}</p>"
            f"<div class='row'>{patches}</div>")


def _similar(la, u: int) -> str:
    rows = "".join(f"<tr><td><a href='{j}.html'>unit {j}</a></td><td>{c:+.3f}</td><td>"
                   f"{'' if w is None else f'{w:+.3f}'}</td></tr>" for j, c, w in la.similar(u))
    what = (f"weight cosine ({html.escape(la.weights[0])})" if la.weights is not None
            else "weight cosine (no convolution makes these units)")
    return (f"<h2>Most similar units</h2><table><tr><th>unit</th><th>correlation</th>"
            f"<th>{what}</th></tr>{rows}</table>")


def _direction(atlas, la, u: int) -> str:
    """A dictionary feature's atom: the units of its layer it is made of."""
    if la.atoms is None:
        return ""
    base, atoms, _, _ = la.atoms
    row = atoms[u]
    order = np.lexsort((np.arange(len(row)), -np.abs(row)))[:8]
    linked = base in atlas.layers
    cell = lambda c: (f"<a href='../{slug(base)}/{c}.html'>unit {c}</a>"  # noqa: E731
                      if linked else f"unit {c}")
    rows = "".join(f"<tr><td>{cell(c)}</td><td>{row[c]:+.3f}</td></tr>" for c in order
                   if row[c] != 0)
    return (f"<h2>Its direction over {html.escape(base)}</h2><p class='note'>The feature's "
            f"atom: the units of {html.escape(base)} it is made of, largest "
            f"weights first.</p><table><tr><th>unit</th><th>weight</th></tr>{rows}</table>")


def _takes_part(atlas, la, u: int) -> str:
    """For a unit of a layer that has a dictionary: the features it takes part in, and how
    many it serves (exp of the entropy of its split: 1 is monosemantic)."""
    from netscope.vision.concepts.quality import channel_shares, features_per_channel

    parts = []
    for feat in atlas.layers.values():
        if feat.atoms is None or feat.atoms[0] != la.name:
            continue
        _, atoms, mean_code, how = feat.atoms
        share = channel_shares(atoms, mean_code)[:, u]
        served = float(features_per_channel(atoms, mean_code)[u])
        order = [k for k in np.lexsort((np.arange(len(share)), -share)) if share[k] >= 0.05][:6]
        rows = "".join(f"<tr><td><a href='../{slug(feat.name)}/{k}.html'>feature {k}</a></td>"
                       f"<td>{share[k]:.0%}</td><td>{atoms[k, u]:+.3f}</td></tr>"
                       for k in order)
        verdict = ("unused by the dictionary" if served == 0 else
                   f"serves {served:.2f} features (effective number: 1 is monosemantic)")
        parts.append(f"<h2>Features it takes part in ({html.escape(feat.name)})</h2>"
                     f"<p>This unit {verdict}.</p><p class='note'>Each feature's share of the "
                     f"unit's mean reconstruction: |atom weight| times the feature's mean code "
                     f"({html.escape(how)}), over all features.</p><table><tr><th>feature"
                     f"</th><th>share</th><th>atom weight</th></tr>{rows}</table>")
    return "".join(parts)


def _inputs(la, u: int) -> str:
    if la.inputs is None:
        return ""
    earlier, terms = la.inputs
    row = terms[u]
    order = np.lexsort((np.arange(len(row)), -row))
    links = lambda ids: "".join(  # noqa: E731
        f"<tr><td><a href='../{slug(earlier)}/{j}.html'>{html.escape(earlier)} unit {j}"
        f"</a></td><td>{row[j]:+.4g}</td></tr>" for j in ids)
    pos = [j for j in order[:5] if row[j] > 0]
    neg = [j for j in order[::-1][:3] if row[j] < 0]
    return (f"<h2>Strongest inputs from {html.escape(earlier)}</h2><p class='note'>Activation "
            f"times the gradient of this unit at its maximum, summed over positions, averaged "
            f"over its top images.</p><table>{links(pos)}</table>"
            + (f"<p>Most inhibiting</p><table>{links(neg)}</table>" if neg else ""))


def _outputs(atlas, la, u: int) -> str:
    """The units (or dictionary features) of the next chosen layer that this unit feeds
    most: the same circuit terms as their inputs, read the other way."""
    parts = []
    for later in atlas.layers.values():
        if later.inputs is None or later.inputs[0] != la.name:
            continue
        column = later.inputs[1][:, u]
        order = np.lexsort((np.arange(len(column)), -column))
        best = [j for j in order[:5] if column[j] > 0]
        what = "feature" if later.name.startswith("features_") else "unit"
        rows = "".join(f"<tr><td><a href='../{slug(later.name)}/{j}.html'>"
                       f"{html.escape(later.name)} {what} {j}</a></td><td>{column[j]:+.4g}"
                       f"</td></tr>" for j in best)
        parts.append(f"<h2>What it feeds in {html.escape(later.name)}</h2><p class='note'>"
                     f"The {what}s of {html.escape(later.name)} this unit contributes to "
                     f"most (the circuit terms of their inputs).</p><table>{rows}</table>")
    return "".join(parts)


def _classes(la, u: int, class_names) -> str:
    if la.classes is None:
        return ""
    row = la.classes[u]
    order = np.lexsort((np.arange(len(row)), -row))[:5]
    name = lambda c: class_names[c] if class_names and c < len(class_names) else f"class {c}"  # noqa: E731
    rows = "".join(f"<tr><td>{html.escape(name(c))}</td><td>{row[c]:+.4g}</td></tr>"
                   for c in order)
    return (f"<h2>Classes it supports</h2><p class='note'>{html.escape(la.classes_how)}</p>"
            f"<table>{rows}</table>")


def save_site(atlas, views, out: str | Path,
              progress: Callable[[str], None] | None = None) -> Path:
    """Write the site into ``out`` from the model's ``views`` (``vision.units.site``),
    every file atomically and the index page last (a site with an index is complete);
    returns the index page."""
    from netscope.files.atomic import write_bytes

    out = Path(out)
    pending: list[tuple[str, bytes]] = []

    def emit(rel: str, data: bytes) -> None:
        if rel == "index.html":
            pending.append((rel, data))  # the index last: a site with one is complete
        else:
            write_bytes(out / rel, data)

    tables = [f"{name}.{ext}" for name in ("units", "units_by_relevance", "unit_stats", "files")
              for ext in ("parquet", "csv") if (out / f"{name}.{ext}").is_file()]
    write_site(atlas, emit, views.picture, views.class_names, progress, views.grids, tables)
    for rel, data in pending:
        write_bytes(out / rel, data)
    return out / "index.html"


def atlas_summary_html(atlas) -> str:
    """A notebook's view of an atlas: one scoped table of its layers."""
    rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{la.units}</td><td>{la.grid[0]}x"
                   f"{la.grid[1]}</td><td>{la.field.method}</td></tr>"
                   for n, la in atlas.layers.items())
    from netscope.render.notebook import fragment

    return fragment(f"<p>Unit atlas of {html.escape(atlas.model)} over {len(atlas.files)} "
                    f"images</p><table><tr><th>layer</th><th>units</th><th>grid</th>"
                    f"<th>field</th></tr>{rows}</table>")
