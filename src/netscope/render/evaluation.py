"""What `netscope vision evaluate` leaves on disk: the ranking as a table (CSV, JSON and the
console), deletion/insertion curves, the maps side by side per image, and one
self-contained HTML page that says what "better" means for every column."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from netscope.files.atomic import write_bytes, write_text
from netscope.render.heatmap import overlay, relevance_image
from netscope.render.png import figure_png, img_tag, subplots
from netscope.render.table import csv_text, markdown_table
from netscope.render.vision_report import slug
from netscope.vision.core.host import host
from netscope.vision.evaluation import BULK_DEFAULTS, Evaluation
from netscope.vision.metrics.sanity import FAIL_AT

MEANING = {
    "deletion_auc": "area under the target's probability while pixels are replaced by the "
                    "baseline, most important first (Petsiuk et al. 2018): LOWER is better",
    "insertion_auc": "area under the target's probability while pixels are restored onto the "
                     "baseline image, most important first: HIGHER is better",
    "road_gap": "ROAD (Rong et al. 2022): mean over the removal shares of p(least relevant "
                "removed) - p(most relevant removed), holes filled by noisy linear "
                "imputation: HIGHER is better",
    "average_drop": "mean of max(0, Y - O) / Y, Y the probability on the image, O on the image "
                    "multiplied by the map (Chattopadhay et al. 2018): LOWER is better",
    "increase_in_confidence": "share of images with O > Y: HIGHER is better",
    "sanity": f"cascading randomization (Adebayo et al. 2018): FAILS when the map's Spearman "
              f"correlation with the trained model's map is still >= {FAIL_AT} with every "
              f"layer re-initialized, i.e. the map does not depend on what the model learned",
    "seconds_per_image": "time to compute the maps, per image, on this machine",
    "rank": "mean of the ranks in deletion, insertion, ROAD gap and average drop; methods "
            "that fail the sanity check come after all that pass; a method whose maps are "
            "constant is uninformative and not ranked (-). Values are means over the "
            "images, ± their SD: where the SDs overlap, these images cannot tell the methods "
            "apart; evaluate more images",
}
HEADER = ["rank", "method", "deletion AUC (lower)", "insertion AUC (higher)",
          "ROAD gap (higher)", "average drop (lower)", "increase (higher)", "sanity",
          "s / image"]


def table_rows(ev: Evaluation) -> list[list[str]]:
    rows = []
    for r in ev.table():
        sanity = r["sanity"] if r["sanity_spearman"] is None else \
            f"{r['sanity']} (rho {r['sanity_spearman']:.2f})"
        rows.append(["-" if r["rank"] is None else str(r["rank"]), r["method"],
                     _pm(r, "deletion_auc"),
                     _pm(r, "insertion_auc"), _pm(r, "road_gap"),
                     _fmt(r["average_drop"], ".1%"), _fmt(r["increase_in_confidence"], ".0%"),
                     sanity, f"{r['seconds_per_image']:.2f}"])
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _pm(row: dict, key: str) -> str:
    """mean ± SD over images (the SD says how sure the ranking is)."""
    if row[key] is None:
        return "-"
    sd = row.get(f"{key}_sd") or 0.0
    return f"{row[key]:.3f}" + (f" ± {sd:.3f}" if sd else "")


def _value(values, i: int) -> float | None:
    return None if values is None else float(values[i])


def text_report(ev: Evaluation) -> str:
    images = ", ".join(f"{n} ({label}, {p:.0%})"
                       for n, label, p in zip(ev.names, ev.labels, ev.probabilities,
                                              strict=True))
    return "\n".join([
        f"model: {ev.model_name}; images: {images}",
        "", markdown_table(HEADER, table_rows(ev)), "",
        *(f"- {k}: {v}" for k, v in MEANING.items()),
        *(f"not applicable: {k}: {v}" for k, v in ev.skipped.items()),
        f"{ev.verdict()} (took {ev.seconds:.0f} s in all)",
    ])


def short_text(ev: Evaluation) -> str:
    """A notebook's text form: the ranked table and the answer, without the glossary."""
    return "\n".join([f"Evaluation of {len(ev.results)} methods on {len(ev.names)} image(s), "
                      f"{ev.model_name}", markdown_table(HEADER, table_rows(ev)),
                      ev.verdict()])


def notebook_html(ev: Evaluation) -> str:
    """A notebook's view: the ranked table (failing methods in red) and the answer."""
    from netscope.render.notebook import fragment

    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    body = "".join("<tr" + (' class="fail"' if "FAILS" in r[7] else "") + ">"
                   + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in table_rows(ev))
    answer = f"<b>{html.escape(_capital(ev.verdict()))}</b>"
    skipped = "".join(f"<p>Not applicable: <b>{html.escape(k)}</b> ({html.escape(v)})</p>"
                      for k, v in ev.skipped.items())
    return fragment(f"<p>{answer} (model <code>{html.escape(ev.model_name)}</code>)</p>"
                    f"<table><tr>{head}</tr>"
                    f"{body}</table>{skipped}", "tr.fail td{color:#b00}")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def per_image_rows(ev: Evaluation) -> list[dict]:
    rows = []
    for res in ev.results:
        for i, name in enumerate(ev.names):
            rows.append({
                "method": res.method, "image": name, "class": ev.labels[i],
                "class_index": ev.targets[i], "probability": ev.probabilities[i],
                "deletion_auc": _value(res.deletion and res.deletion.auc, i),
                "insertion_auc": _value(res.insertion and res.insertion.auc, i),
                "road_gap": _value(res.road and res.road.gap, i),
                "drop": _value(res.confidence and res.confidence.drop, i),
                "increase": _value(res.confidence and res.confidence.increase, i),
                "sanity_spearman": (None if res.sanity is None
                                    else float(res.sanity.spearman[-1, i])),
            })
    return rows


def curves_png(ev: Evaluation) -> bytes:
    """Mean deletion and insertion curves over the images, one line per method."""
    fig, axes = subplots(1, 2, figsize=(11, 4.2))
    for ax, metric in zip(axes, ("deletion", "insertion"), strict=True):
        for res in ev.results:
            curve = getattr(res, metric)
            if curve is None:
                continue
            style = ":" if res.method == "random" else "-"
            ax.plot(host(curve.fractions), host(curve.scores.mean(0)), style,
                    label=f"{res.method} ({float(curve.auc.mean()):.3f})")
        ax.set(xlabel=f"share of pixels {'removed' if metric == 'deletion' else 'restored'}",
               ylabel="probability of the target class", title=f"{metric} (mean over images)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, f"{metric} not computed", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    return figure_png(fig, dpi=100)


def maps_png(ev: Evaluation, i: int) -> bytes:
    """Image ``i`` with every method's map over it."""
    image = ev.images[i]
    n = len(ev.results) + 1
    cols = min(n, 7)
    rows = -(-n // cols)
    fig, axes = subplots(rows, cols, figsize=(2.1 * cols, 2.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes.flat[0].imshow(image)
    axes.flat[0].set_title(f"{ev.labels[i]}\n{ev.probabilities[i]:.0%}", fontsize=8)
    for ax, res in zip(axes.flat[1:], ev.results, strict=False):
        shown = res.maps if res.signed is None else res.signed
        up = F.interpolate(shown[i][None, None].float(), size=image.shape[:2],
                           mode="bilinear", align_corners=False)[0, 0]
        ax.imshow(overlay(image, host(up.clamp(0, 1))) if res.signed is None else
                  np.clip(0.45 * image + 0.55 * relevance_image(host(up)), 0, 1))
        ax.set_title(res.method + (" (signed)" if res.signed is not None else ""),
                     fontsize=8)
    fig.tight_layout()
    return figure_png(fig, dpi=100)


def html_report(ev: Evaluation, curves: bytes | None, maps: list[bytes]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    body = "".join("<tr" + (' class="fail"' if "FAILS" in r[7] else "") + ">"
                   + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in table_rows(ev))
    meaning = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
                      for k, v in MEANING.items())
    sanity = _sanity_table(ev)
    figs = "".join(f"<h3>{html.escape(n)}</h3>{img_tag(png, n)}"
                   for n, png in zip(ev.names, maps, strict=True))
    verdict = f"<b>{html.escape(_capital(ev.verdict()))}</b>"
    s = ev.settings
    skipped = "".join(f"<p>Not applicable here: <b>{html.escape(k)}</b> ({html.escape(v)})</p>"
                      for k, v in ev.skipped.items())
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>netscope: which map to trust</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:nth-child(2),th:nth-child(2){{text-align:left}}tr.fail td{{color:#b00}}
img{{max-width:100%}}</style></head><body>
<h1>Which map to trust</h1>
<p>Model <code>{html.escape(ev.model_name)}</code>, {len(ev.names)} image(s), each explained
for its top-1 class. {verdict}. Settings: {s.steps} deletion/insertion steps, baseline
{html.escape(str(s.baseline))}, ROAD at {', '.join(f'{p:g}%' for p in s.road_percentages)},
method settings {html.escape(_given(ev))}. {ev.seconds:.0f} s in all.</p>
<table><tr>{head}</tr>{body}</table>{skipped}<ul>{meaning}</ul>
{f'<h2>Deletion and insertion curves</h2>{img_tag(curves, "curves")}' if curves else ""}
<h2>Sanity check: Spearman correlation with the trained model's map</h2>{sanity}
<h2>The maps</h2>{figs}</body></html>"""


def _given(ev: Evaluation) -> str:
    """The method settings that differ from the methods' own defaults (the rest: each
    method's default; every method's full settings are in evaluation.json)."""
    given = {**BULK_DEFAULTS, **ev.settings.method_settings}
    return ", ".join(f"{k} {v}" for k, v in given.items()) or "the methods' own defaults"


def _sanity_table(ev: Evaluation) -> str:
    checked = [r for r in ev.results if r.sanity is not None]
    if not checked:
        return "<p>Not run.</p>"
    first = checked[0].sanity
    head = "".join(f"<th>{html.escape(n)} ({d}/{first.groups} groups)</th>"
                   for n, d in zip(first.stages, first.depth, strict=True))
    rows = "".join(
        f"<tr><td>{html.escape(r.method)}</td>"
        + "".join(f"<td>{v:.2f}</td>" for v in r.sanity.spearman.mean(1))
        + f"<td>{'passes' if r.sanity.passed else 'FAILS'}</td></tr>" for r in checked)
    return (f"<p>Layers re-initialized from the head down; columns: randomized down to "
            f"this group.</p><table><tr><th>method</th>{head}<th>verdict</th></tr>{rows}"
            f"</table>")


def write_evaluation(ev: Evaluation, out: str | Path) -> dict[str, Path]:
    out = Path(out)
    table = ev.table()
    paths = {"evaluation.csv": write_text(out / "evaluation.csv", csv_text(table)),
             "per_image.csv": write_text(out / "per_image.csv", csv_text(per_image_rows(ev)))}
    doc = {"model": ev.model_name, "images": ev.names, "classes": ev.labels,
           "skipped": ev.skipped,
           "targets": ev.targets, "probabilities": ev.probabilities,
           "settings": {k: (list(v) if isinstance(v, tuple) else v)
                        for k, v in ev.settings.__dict__.items()},
           "meaning": MEANING, "table": table, "seconds": ev.seconds,
           "method_settings": {r.method: r.settings for r in ev.results},
           "curves": {r.method: {k: {"fractions": getattr(r, k).fractions.tolist(),
                                     "scores": getattr(r, k).scores.tolist()}
                                 for k in ("deletion", "insertion") if getattr(r, k)}
                      for r in ev.results},
           "sanity": {r.method: {"stages": r.sanity.stages, "depth": r.sanity.depth,
                                 "spearman": r.sanity.spearman.tolist(),
                                 "ssim": r.sanity.ssim.tolist()}
                      for r in ev.results if r.sanity is not None}}
    paths["evaluation.json"] = write_text(out / "evaluation.json",
                                          json.dumps(doc, indent=1, default=_plain))
    curves = curves_png(ev) if {"deletion", "insertion"} & set(ev.settings.metrics) else None
    if curves:
        paths["curves.png"] = write_bytes(out / "curves.png", curves)
    maps = [maps_png(ev, i) for i in range(len(ev.names))]
    for name, png in zip(ev.names, maps, strict=True):
        paths[f"maps_{slug(name)}.png"] = write_bytes(out / f"maps_{slug(name)}.png", png)
    paths["report.html"] = write_text(out / "report.html", html_report(ev, curves, maps))
    return paths


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
