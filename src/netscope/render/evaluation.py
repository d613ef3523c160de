"""What `netscope vision evaluate` leaves on disk: the ranking as a table (CSV, JSON and the
console), deletion/insertion curves, the maps side by side per image, and one
self-contained HTML page that says what "better" means for every column."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

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
from netscope.vision.metrics.registry import METRICS, Column, Metric


def meaning(ev: Evaluation) -> dict[str, str]:
    """What every column shown means and which way is better, from the metric table."""
    out: dict[str, str] = {}
    for m in chosen_metrics(ev):
        if m.verdict:
            out[m.name] = m.verdict
        else:
            out.update({c.name: c.meaning for c in m.columns})
    ranked = [c.header.split(" (")[0] for c, _ in _ranked(ev)]
    out["seconds_per_image"] = "time to compute the maps, per image, on this machine"
    out["rank"] = (f"mean of the ranks in {', '.join(ranked) or 'no column'}; methods that "
                   f"fail a verdict (the sanity check) come after all that pass; a method "
                   f"whose maps are constant is uninformative and not ranked (-). Values are "
                   f"means over the images, ± their SD: where the SDs overlap, these images "
                   f"cannot tell the methods apart; evaluate more images")
    return out


def chosen_metrics(ev: Evaluation) -> list[Metric]:
    """The metrics run here, in the table's order."""
    ran = {k for r in ev.results for k in r.scores}
    return [m for n, m in METRICS.items() if n in ev.settings.metrics and
            (n in ran or not ev.results)]


def _ranked(ev: Evaluation) -> list[tuple[Column, Metric]]:
    names = {c for c, _ in ev.ranked_columns()}
    return [(c, m) for m in chosen_metrics(ev) for c in m.columns if c.name in names]


def header(ev: Evaluation) -> list[str]:
    cells = ["rank", "method"]
    for m in chosen_metrics(ev):
        cells += [m.name] if m.verdict else [c.header for c in m.columns]
    return cells + ["s / image"]


def table_rows(ev: Evaluation) -> list[list[str]]:
    rows = []
    for r in ev.table():
        cells = ["-" if r["rank"] is None else str(r["rank"]), r["method"]]
        for m in chosen_metrics(ev):
            cells += [_verdict(r, m)] if m.verdict else [_cell(r, c) for c in m.columns]
        rows.append(cells + [f"{r['seconds_per_image']:.2f}"])
    return rows


def _verdict(row: dict, m: Metric) -> str:
    """'passes (rho 0.12)': the verdict, with its metric's numbers."""
    numbers = [f"{c.header} {format(row[c.name], c.shown)}" for c in m.columns
               if row[c.name] is not None]
    return row[m.name] + (f" ({', '.join(numbers)})" if numbers else "")


def _cell(row: dict, c: Column) -> str:
    """mean ± SD over images (the SD says how sure the ranking is)."""
    if row[c.name] is None:
        return "-"
    sd = row.get(f"{c.name}_sd") or 0.0 if c.spread else 0.0
    return format(row[c.name], c.shown) + (f" ± {format(sd, c.shown)}" if sd else "")


def _failing(cells: list[str]) -> bool:
    return any(c.startswith("FAILS") for c in cells)


def text_report(ev: Evaluation) -> str:
    images = ", ".join(f"{n} ({label}, {p:.0%})"
                       for n, label, p in zip(ev.names, ev.labels, ev.probabilities,
                                              strict=True))
    return "\n".join([
        f"model: {ev.model_name}; images: {images}",
        "", markdown_table(header(ev), table_rows(ev)), "",
        *(f"- {k}: {v}" for k, v in meaning(ev).items()),
        *(f"not applicable: {k}: {v}" for k, v in ev.skipped.items()),
        *(f"metric not run: {k}: {v}" for k, v in ev.not_run.items()),
        f"{ev.verdict()} (took {ev.seconds:.0f} s in all)",
    ])


def short_text(ev: Evaluation) -> str:
    """A notebook's text form: the ranked table and the answer, without the glossary."""
    return "\n".join([f"Evaluation of {len(ev.results)} methods on {len(ev.names)} image(s), "
                      f"{ev.model_name}", markdown_table(header(ev), table_rows(ev)),
                      ev.verdict()])


def notebook_html(ev: Evaluation) -> str:
    """A notebook's view: the ranked table (failing methods in red) and the answer."""
    from netscope.render.notebook import fragment

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header(ev))
    body = "".join("<tr" + (' class="fail"' if _failing(r) else "") + ">"
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


def _value(values, i: int) -> float | None:
    return None if values is None else float(values[i])


def per_image_rows(ev: Evaluation) -> list[dict]:
    rows = []
    shown = [c for m in chosen_metrics(ev) for c in m.columns]
    for res in ev.results:
        for i, name in enumerate(ev.names):
            row = {"method": res.method, "image": name, "class": ev.labels[i],
                   "class_index": ev.targets[i], "probability": ev.probabilities[i]}
            row.update({c.name: _value(res.values(c.name), i) for c in shown})
            rows.append(row)
    return rows


def plotted(ev: Evaluation) -> list[Metric]:
    """The metrics with a curve to draw."""
    return [m for m in chosen_metrics(ev)
            if any(m.name in r.scores and r.scores[m.name].plot for r in ev.results)]


def curves_png(ev: Evaluation) -> bytes:
    """Mean curves over the images (deletion, insertion...), one line per method."""
    metrics = plotted(ev)
    fig, axes = subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4.2), squeeze=False)
    for ax, m in zip(axes.flat, metrics, strict=True):
        plot = None
        for res in ev.results:
            plot = res.scores[m.name].plot if m.name in res.scores else None
            if plot is None:
                continue
            auc = res.values(m.columns[0].name)
            style = ":" if res.method == "random" else "-"
            ax.plot(host(plot.x), host(plot.y.mean(0)), style,
                    label=f"{res.method} ({float(auc.mean()):.3f})")
            ax.set(xlabel=plot.x_label, ylabel=plot.y_label)
        ax.set_title(f"{m.label} (mean over images)")
        ax.legend(fontsize=7)
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
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header(ev))
    body = "".join("<tr" + (' class="fail"' if _failing(r) else "") + ">"
                   + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in table_rows(ev))
    glossary = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
                       for k, v in meaning(ev).items())
    sanity = _sanity_table(ev)
    figs = "".join(f"<h3>{html.escape(n)}</h3>{img_tag(png, n)}"
                   for n, png in zip(ev.names, maps, strict=True))
    verdict = f"<b>{html.escape(_capital(ev.verdict()))}</b>"
    skipped = "".join(f"<p>Not applicable here: <b>{html.escape(k)}</b> ({html.escape(v)})</p>"
                      for k, v in ev.skipped.items()) + \
        "".join(f"<p>Metric not run: <b>{html.escape(k)}</b> ({html.escape(v)})</p>"
                for k, v in ev.not_run.items())
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>netscope: which map to trust</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:nth-child(2),th:nth-child(2){{text-align:left}}tr.fail td{{color:#b00}}
img{{max-width:100%}}</style></head><body>
<h1>Which map to trust</h1>
<p>Model <code>{html.escape(ev.model_name)}</code>, {len(ev.names)} image(s), each explained
for its top-1 class. {verdict}. Metric settings: {html.escape(_metric_settings(ev))}; method
settings {html.escape(_given(ev))}. {ev.seconds:.0f} s in all.</p>
<table><tr>{head}</tr>{body}</table>{skipped}<ul>{glossary}</ul>
{f'<h2>Curves</h2>{img_tag(curves, "curves")}' if curves else ""}
<h2>Sanity check: Spearman correlation with the trained model's map</h2>{sanity}
<h2>The maps</h2>{figs}</body></html>"""


def _metric_settings(ev: Evaluation) -> str:
    """Every setting the chosen metrics ran with."""
    seen: dict[str, Any] = {}
    for m in chosen_metrics(ev):
        seen.update(ev.settings.for_metric(m))
    return ", ".join(f"{k} {_plain_text(v)}" for k, v in seen.items()) or "none"


def _plain_text(value: Any) -> str:
    return ",".join(f"{v:g}" for v in value) if isinstance(value, tuple | list) else str(value)


def _given(ev: Evaluation) -> str:
    """The method settings that differ from the methods' own defaults (the rest: each
    method's default; every method's full settings are in evaluation.json)."""
    given = {**BULK_DEFAULTS, **ev.settings.method_settings}
    return ", ".join(f"{k} {v}" for k, v in given.items()) or "the methods' own defaults"


def _sanity_table(ev: Evaluation) -> str:
    """The correlations at every depth of the cascading randomization, per method."""
    checked = [(r.method, r.scores["sanity"]) for r in ev.results if "sanity" in r.scores]
    if not checked:
        return "<p>Not run.</p>"
    first = checked[0][1].record
    head = "".join(f"<th>{html.escape(n)} ({d}/{first['groups']} groups)</th>"
                   for n, d in zip(first["stages"], first["depth"], strict=True))
    rows = "".join(
        f"<tr><td>{html.escape(method)}</td>"
        + "".join(f"<td>{float(np.mean(v)):.2f}</td>" for v in got.record["spearman"])
        + f"<td>{'passes' if got.passed else 'FAILS'}</td></tr>" for method, got in checked)
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
           "metric_settings": {m.name: ev.settings.for_metric(m) for m in chosen_metrics(ev)},
           "meaning": meaning(ev), "table": table, "seconds": ev.seconds,
           "metrics_not_run": ev.not_run,
           "method_settings": {r.method: r.settings for r in ev.results},
           "curves": {r.method: {k: s.record for k, s in r.scores.items() if s.plot}
                      for r in ev.results},
           "details": {r.method: {k: s.record for k, s in r.scores.items()
                                  if s.record and not s.plot} for r in ev.results}}
    paths["evaluation.json"] = write_text(out / "evaluation.json",
                                          json.dumps(doc, indent=1, default=_plain))
    curves = curves_png(ev) if plotted(ev) else None
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
