"""Self-contained HTML pages (images embedded) plus PNG files for the vision techniques."""

from __future__ import annotations

import hashlib
import html
import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from netscope.files.atomic import write_bytes, write_text
from netscope.render.grids import feature_grid_png, image_row_png
from netscope.render.heatmap import overlay, saliency_image
from netscope.render.png import img_tag
from netscope.vision.report import Explanation

STYLE = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}
figure{display:inline-block;margin:.4em;vertical-align:top}figcaption{font-size:.85em}
img{max-width:100%}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}
.pic img{width:224px;image-rendering:auto}"""


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def slug(text: str, limit: int = 80) -> str:
    """A file-name-safe form of ``text``; long ones are cut and end in a short hash of the
    whole text, so names stay unique and within every file system's limit (255 bytes)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "item"
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    return f"{name[:limit - 11].rstrip('_.-')}-{digest}"


def _figure(data: bytes, caption: str, cls: str = "pic") -> str:
    return (f'<figure class="{cls}">{img_tag(data, caption)}'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def page(title: str, body: str) -> str:
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}'
            f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"{body}</body></html>")


def explanation_section(ex: Explanation, out: Path, model_name: str,
                        heading: bool = True) -> str:
    """HTML for one image, writing each picture as a PNG under ``out`` too; ``heading``:
    its own title (off on a page that has it as its title already)."""
    stem = slug(ex.title)
    pictures: list[tuple[str, str, bytes]] = [("input", "input (as the model sees it)",
                                               png_bytes(ex.image))]
    for view in ex.classes:
        name = slug(view.name)
        pictures.append((f"gradcam_{name}", f"Grad-CAM: {view.name}",
                         png_bytes(overlay(ex.image, view.gradcam))))
        pictures.append((f"saliency_{name}", f"saliency: {view.name}",
                         png_bytes(saliency_image(view.saliency))))
    for file, _, data in pictures:
        write_bytes(out / f"{stem}_{file}.png", data)
    rows = "".join(f"<tr><td>{i}</td><td>{html.escape(n)}</td><td>{p:.1%}</td></tr>"
                   for i, n, p in ex.predictions)
    grids = ""
    for layer, act in ex.activations.items():
        data = feature_grid_png(act, layer)
        write_bytes(out / f"{stem}_activations_{slug(layer)}.png", data)
        grids += _figure(data, f"activations of {layer}", "grid")
    figs = "".join(_figure(d, c) for _, c, d in pictures)
    title = f"<h2>{html.escape(ex.title)}</h2>" if heading else ""
    return (f"{title}<p>Model <code>{html.escape(model_name)}</code>; "
            f"Grad-CAM at layer <code>{html.escape(ex.layer)}</code>, maps divided by their "
            f"maximum; saliency = max over colour channels of |d score / d pixel|"
            f"{f', its mean over {ex.smooth} noisy copies (SmoothGrad)' if ex.smooth else ''}"
            f", shown up to its 99th percentile.</p>"
            f"<table><tr><th>class</th><th>name</th><th>probability</th></tr>{rows}</table>"
            f"{faithfulness_line(ex)}<div>{figs}</div><h3>Activations</h3><div>{grids}</div>")


def faithfulness_line(ex: Explanation) -> str:
    """How faithful the top class's Grad-CAM map is, against a random map."""
    f = ex.faithfulness
    if not f:
        return ""
    (d, d_rand), (i, i_rand) = f["deletion"], f["insertion"]
    spread = lambda r: f"{np.mean(r):.3f} ± {np.std(r, ddof=1) if len(r) > 1 else 0:.3f}"  # noqa: E731
    return (f"<p><b>How faithful is this map?</b> Grad-CAM of "
            f"{html.escape(ex.classes[0].name)}: deletion AUC {d:.3f} ({len(d_rand)} random "
            f"maps {spread(d_rand)}; lower is better), insertion AUC {i:.3f} (random "
            f"{spread(i_rand)}; higher is better), {f['steps']} steps: "
            f"{html.escape(f['why'])}. <code>netscope vision evaluate</code> compares every "
            f"method.</p>")


def write_explanations(explanations: Sequence[Explanation], out: str | Path, model_name: str,
                       one_page: bool = False,
                       progress: Callable[[str], None] | None = None) -> list[Path]:
    """One HTML page per image (or one for all) plus the PNGs of every picture (drawing
    them takes seconds per image: ``progress`` hears of each)."""
    out = Path(out)
    say = progress or (lambda message: None)
    sections = []
    for ex in explanations:
        say(f"drawing the pictures of {ex.title}")
        sections.append((ex, explanation_section(ex, out, model_name, heading=one_page)))
    if one_page:
        body = "".join(s for _, s in sections)
        return [write_text(out / "report.html", page("netscope vision report", body))]
    back = "<p><a href='index.html'>all images</a></p>"
    pages = [write_text(out / f"{slug(ex.title)}.html", page(f"netscope: {ex.title}",
                                                             back + s))
             for ex, s in sections]
    return [*pages, write_text(out / "index.html", _index(explanations, model_name))]


def _index(explanations: Sequence[Explanation], model_name: str) -> str:
    """The report's first page: each image with its top classes and a link to its page."""
    tiles = "".join(
        f"<figure><a href='{slug(ex.title)}.html'><img src='{slug(ex.title)}_input.png' "
        f"alt='{html.escape(ex.title)}' style='width:160px'></a><figcaption>"
        f"<a href='{slug(ex.title)}.html'>{html.escape(ex.title)}</a>: "
        + ", ".join(f"{html.escape(n)} {p:.0%}" for _, n, p in ex.predictions[:3])
        + (f"; Grad-CAM {html.escape(ex.faithfulness['verdict'])} than random maps"
           if ex.faithfulness.get("verdict") in ("better", "worse") else
           "; Grad-CAM: cannot tell against random maps" if ex.faithfulness else "")
        + "</figcaption></figure>" for ex in explanations)
    return page("netscope vision report", f"<p>{len(explanations)} image(s), model "
                f"<code>{html.escape(model_name)}</code>; each image's page has its "
                f"Grad-CAM and saliency maps for its top classes and its activations.</p>"
                f"<div>{tiles}</div>")


def write_gallery(images: Sequence[np.ndarray], labels: Sequence[str], title: str,
                  note: str, out: str | Path, stem: str) -> Path:
    """A grid PNG, one PNG per picture, and an HTML page with all of them."""
    out = Path(out)
    grid = image_row_png(images, labels)
    write_bytes(out / f"{stem}.png", grid)
    figs = ""
    for im, label in zip(images, labels, strict=True):
        data = png_bytes(im)
        write_bytes(out / f"{stem}_{slug(label)}.png", data)
        figs += _figure(data, label)
    body = f"<p>{html.escape(note)}</p>{img_tag(grid, title)}<div>{figs}</div>"
    return write_text(out / f"{stem}.html", page(title, body))
