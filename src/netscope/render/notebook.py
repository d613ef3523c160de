"""How results show themselves in Jupyter: HTML fragments whose styles apply only inside
their own container (a notebook page keeps its layout: no ``<body>`` rule, no style on
every table or image), pictures sized to the cell, and short text forms.

Every ``_repr_html_`` in netscope goes through ``fragment``; pages written to disk keep
their own full-document styles.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import numpy as np

from netscope.render.png import figure_png, img_tag, subplots

SCOPE = "netscope-out"
BASE_CSS = ("table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid #ccc;"
            "padding:3px 7px;text-align:right}td:first-child,th:first-child{text-align:left}"
            "img{max-width:100%;height:auto}figure{display:inline-block;margin:.4em;"
            "max-width:100%}p{margin:.4em 0}")
MOST_MAPS = 8  # a batch's first maps shown; the text form says how many there are


def scoped_css(css: str, scope: str = SCOPE) -> str:
    """Every selector of plain CSS rules (no @-rules) put inside ``.scope``; ``body`` and
    ``html`` become the container itself."""
    rules = []
    for rule in css.split("}"):
        if "{" not in rule:
            continue
        selectors, body = rule.split("{", 1)
        scoped = []
        for sel in selectors.split(","):
            sel = sel.strip()
            if not sel:
                continue
            scoped.append(f".{scope}" if sel in ("body", "html")
                          else re.sub(r"^(body|html)\b", f".{scope}", sel)
                          if sel.startswith(("body ", "html "))
                          else f".{scope} {sel}")
        rules.append(f"{','.join(scoped)}{{{body}}}")
    return "".join(rules)


def fragment(body: str, css: str = "") -> str:
    """A notebook output: ``body`` in a container, with ``css`` (and the base table and
    image rules) applying only inside it."""
    return (f"<div class='{SCOPE}'><style>{scoped_css(BASE_CSS + css)}</style>{body}</div>")


def table_html(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _labels(heat) -> list[str]:
    from netscope.vision.models.classes import class_label, imagenet_classes

    logits = heat.logits
    names = getattr(heat, "class_names", None)
    if names is None and getattr(logits, "ndim", 0) == 2 and logits.shape[1] == 1000:
        names = imagenet_classes()
    return [class_label(names, int(k)) for k in heat.classes.tolist()]


def _signed(heat) -> np.ndarray | None:
    """Per-pixel signed relevance (N, H, W) in [-1, 1] for the relevance methods, else None."""
    signed = heat.signed()
    return None if signed is None else signed.detach().float().cpu().numpy()


def heatmaps_png(heat) -> bytes:
    """The first maps of a batch, each titled with its class, method and layer, with a
    colour bar (signed relevance centred on zero for LRP)."""
    n = min(heat.maps.shape[0], MOST_MAPS)
    signed = _signed(heat)
    maps = signed if signed is not None else heat.maps.detach().float().cpu().numpy()
    fig, axes = subplots(1, n, figsize=(2.6 * n + 0.6, 2.9), squeeze=False)
    labels = _labels(heat)
    for i, ax in enumerate(axes[0]):
        m = maps[i]
        if signed is not None:
            top = float(np.percentile(np.abs(m), 99)) or 1.0  # as the CLI draws relevance
            shown = ax.imshow(np.clip(m / top, -1, 1), cmap="bwr", vmin=-1, vmax=1)
        elif heat.layer == "input":  # pixel maps: a few pixels dominate; as the CLI draws
            top = float(np.percentile(m, 99)) or 1.0
            shown = ax.imshow(np.clip(m / top, 0, 1), cmap="inferno", vmin=0, vmax=1)
        else:
            shown = ax.imshow(m, cmap="jet", vmin=0, vmax=1)
        ax.set_title(f"{labels[i]}\n{heat.method} @ {heat.layer}", fontsize=8)
        ax.axis("off")
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=7)
    fig.tight_layout()
    return figure_png(fig, dpi=80)


def heatmaps_text(heat) -> str:
    shape = "x".join(str(s) for s in heat.maps.shape)
    labels = _labels(heat)
    shown = ", ".join(repr(x) for x in labels[:MOST_MAPS])
    more = f", ... ({len(labels)} in all)" if len(labels) > MOST_MAPS else ""
    warn = f", {len(heat.warnings)} warning(s)" if heat.warnings else ""
    return (f"Heatmaps(method={heat.method!r}, layer={heat.layer!r}, maps {shape}, "
            f"classes [{shown}{more}]{warn})")


def heatmaps_html(heat) -> str:
    warnings = "".join(f"<p><b>Warning</b>: {html.escape(w)}</p>" for w in heat.warnings)
    return fragment(f"<p>{html.escape(heatmaps_text(heat))}</p>{warnings}"
                    f"{img_tag(heatmaps_png(heat), 'maps')}")


def pictures_png(images: np.ndarray, labels: Sequence[str]) -> bytes:
    """(N, H, W, 3) pictures (the first MOST_MAPS), four to a row so that each stays
    readable in a notebook's cell, each with its label."""
    from netscope.render.grids import image_row_png

    return image_row_png(list(images[:MOST_MAPS]), list(labels[:MOST_MAPS]), cols=4,
                         label_size=9)


def activations_png(name: str, act: np.ndarray) -> bytes:
    """One layer's channels on the first image, as the activations command draws them."""
    from netscope.render.grids import feature_grid_png

    return feature_grid_png(act, name, max_channels=32)


def overlay_png(heat, images) -> bytes:
    """The first maps of a batch over their pictures (RGB arrays, one per map or one for
    all), titled with the class, method and layer, with a colour bar."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from netscope.render.heatmap import overlay, relevance_image

    n = min(heat.maps.shape[0], MOST_MAPS)
    one = isinstance(images, np.ndarray) and images.ndim == 3  # else one picture per map
    pictures = [images] * n if one else [np.asarray(p) for p in list(images)[:n]]
    signed = heat.signed()
    labels = _labels(heat)
    fig, axes = subplots(1, n, figsize=(2.8 * n + 0.6, 3.0), squeeze=False)
    for i, ax in enumerate(axes[0]):
        rgb = pictures[i].astype(np.float32)
        rgb = rgb / 255 if rgb.max() > 1.5 else rgb
        size = rgb.shape[:2]
        values = (signed if signed is not None else heat.maps)[i:i + 1].detach().float()
        up = torch_resize(values, size)
        if signed is not None:
            top = float(np.percentile(np.abs(up), 99)) or 1.0
            ax.imshow(np.clip(0.45 * rgb + 0.55 * relevance_image(up), 0, 1))
            scale = ScalarMappable(Normalize(-top, top), "bwr")
        else:
            top = float(up.max()) or 1.0
            ax.imshow(overlay(rgb, up / top))
            scale = ScalarMappable(Normalize(0, 1), "jet")
        ax.set_title(f"{labels[i]}\n{heat.method} @ {heat.layer}", fontsize=8)
        ax.axis("off")
        fig.colorbar(scale, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=7)
    fig.tight_layout()
    return figure_png(fig, dpi=80)


def torch_resize(values, size: tuple[int, int]) -> np.ndarray:
    """(1, h, w) tensor -> (H, W) array, bilinear."""
    import torch.nn.functional as F

    return F.interpolate(values[:, None], size=size, mode="bilinear",
                         align_corners=False)[0, 0].cpu().numpy()
