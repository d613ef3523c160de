"""The page a person opens after `vision explain`: what was done, which classes the model
saw, a gallery of maps over their images (an even sample, and the least confident), and the
files that could not be read."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd

from netscope.render.heatmap import overlay, relevance_image
from netscope.render.vision_report import _figure, page, png_bytes


def explain_page(table: pd.DataFrame, pictures: Sequence[tuple[str, np.ndarray, np.ndarray]],
                 title: str, settings: dict) -> str:
    """HTML for a run: ``pictures`` are (file, RGB crop the model saw, map in [0, 1])."""
    ok = table[table["status"] == "ok"]
    bad = table[table["status"] != "ok"]
    facts = (f"<p>{len(ok)} images explained with {html.escape(str(settings.get('method')))} "
             f"(model {html.escape(str(settings.get('model')))}, layer "
             f"{html.escape(str(settings.get('layer') or 'default'))}); {len(bad)} could not "
             f"be read. The full table is results.parquet / results.csv; every map is in "
             f"maps/*.npz (the table's shard and map_index columns).</p>")
    if "correct" in ok and len(ok):
        right = ok["correct"].astype(str).str.lower() == "true"
        facts += (f"<p>Maps explain each image's folder class; the model's top-1 class "
                  f"matches it for {right.mean():.1%} of the images.</p>")
    top = ok["class_name"].value_counts().head(10)
    classes = "".join(f"<tr><td>{html.escape(str(c))}</td><td>{k}</td></tr>"
                      for c, k in top.items())
    figs = ""
    signed = settings.get("signed", False)
    if signed:
        facts += ("<p>The maps are signed (relevance, or each segment's value): red for "
                  "the class, blue against it, white for none.</p>")
    probs = dict(zip(ok["file"], ok["probability"], strict=True))
    names = dict(zip(ok["file"], ok["class_name"], strict=True))
    for file, rgb, heat in pictures:
        caption = f"{file}: {names.get(file, '')} ({probs.get(file, float('nan')):.0%})"
        picture = np.clip(0.45 * rgb + 0.55 * relevance_image(heat), 0, 1) if signed \
            else overlay(rgb, heat)
        figs += _figure(png_bytes(picture), caption)
    unreadable = "".join(f"<li>{html.escape(f)}: {html.escape(e)}</li>"
                         for f, e in zip(bad["file"][:50], bad["error"][:50], strict=True))
    more = f"<p>... and {len(bad) - 50} more (see the table).</p>" if len(bad) > 50 else ""
    body = (facts + "<h2>Classes seen most</h2><table><tr><th>class</th><th>images</th></tr>"
            f"{classes}</table><h2>Maps</h2><p>An even sample of the files, then the least "
            f"confident predictions.</p><div>{figs}</div>"
            + (f"<h2>Unreadable files</h2><ul>{unreadable}</ul>{more}" if len(bad) else ""))
    return page(title, body)
