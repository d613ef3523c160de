"""A prediction explained by its units, drawn: per unit, where it fires and counts on the
image (signed, red for the class, blue against), beside its feature visualization and its
strongest dataset patches when an atlas was given."""

from __future__ import annotations

import html

import numpy as np

from netscope.render.heatmap import relevance_image
from netscope.render.png import figure_png, img_tag, subplots


def concepts_png(c) -> bytes:
    extra = max((1 + len(v["patches"]) for v in c.atlas.values()), default=0)
    cols = 1 + extra
    fig, axes = subplots(len(c.units), cols, figsize=(2.2 * cols, 2.2 * len(c.units) + 0.5),
                         squeeze=False)
    total = float(np.abs(c.terms).sum()) or 1.0
    for row, (u, heat) in enumerate(zip(c.units, c.maps, strict=True)):
        ax = axes[row, 0]
        ax.imshow(np.clip(0.45 * c.image + 0.55 * relevance_image(heat), 0, 1))
        ax.set_title(f"unit {u}: {c.terms[u] / total:+.0%}", fontsize=9)
        found = c.atlas.get(u, {})
        pictures = ([found["picture"]] if found.get("picture") is not None else []) + list(
            found.get("patches", []))
        for col, pic in enumerate(pictures, start=1):
            axes[row, col].imshow(np.clip(pic, 0, 1))
            axes[row, col].set_title("visualization" if col == 1 and found.get(
                "picture") is not None else "dataset patch", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(f"{c.class_name} ({c.score:.3g}): units of {c.layer}, {c.relevance}",
                 fontsize=10)
    fig.tight_layout()
    return figure_png(fig, dpi=80)


def concepts_html(c) -> str:
    rows = "".join(f"<tr><td>{u}</td><td>{t:+.4g}</td><td>{s:+.1%}</td></tr>"
                   for u, t, s in c.table().itertuples(index=False))
    from netscope.render.notebook import fragment

    return fragment(f"<p>{html.escape(c.class_name)}: the units of {html.escape(c.layer)} "
                    f"behind its score ({c.relevance})</p><table><tr><th>unit</th><th>term"
                    f"</th><th>share</th></tr>{rows}</table>{img_tag(concepts_png(c), 'units')}")
