"""Everything a multi-task comparison leaves on disk: CSV, JSON, plots and one HTML page."""

from __future__ import annotations

import html
import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from netscope.files.atomic import write_bytes, write_text
from netscope.multitask.comparison.metrics import Metric, metrics_of
from netscope.multitask.comparison.results import Comparison
from netscope.render.balancing import balancing_pictures, per_task_gains
from netscope.render.blandaltman import bland_altman_png
from netscope.render.png import figure_png, img_tag, subplots
from netscope.render.table import csv_text, markdown_table, with_sd


def columns(comp: Comparison) -> list[Metric]:
    """The table's metric columns: the kind's metrics, the ranking metric on seen and on new
    tasks when a protocol holds tasks out, then the training time."""
    ms = list(metrics_of(comp.kind))
    first = comp.summary()[0]
    m = comp.metric
    for part, text in (("seen", "seen tasks"), ("new", "new tasks")):
        if f"{part}_{m.key}" in first:
            ms.insert(-1, replace(m, key=f"{part}_{m.key}", header=f"{m.header}, {text}",
                                  definition=f"{m.definition}, on the test rows of {text}"))
    if any("conflict_share" in row for row in comp.summary()):
        ms.append(CONFLICT)
    return ms


CONFLICT = Metric("conflict_share", "conflicting steps", "%", True,
                  "share of training steps (balanced rows) in which some pair of tasks' "
                  "gradients of the shared parameters had a negative inner product",
                  lambda y, mu, s: float("nan"))


def header(comp: Comparison) -> list[str]:
    return ["model", *(m.header for m in columns(comp))]


def table_rows(comp: Comparison) -> list[list[str]]:
    rows = []
    for s in comp.summary():
        n = s["splits"]
        rows.append([s["model"], *(with_sd(s[m.key], s[f"{m.key}_sd"], n,
                                           ".2%" if m.fmt == "%" else m.fmt)
                                   if m.key in s else "" for m in columns(comp))])
    return rows


def definitions_of(comp: Comparison) -> dict[str, str]:
    """Each column's definition, by the heading the table shows it under (the summary's
    key in brackets, for code that reads summary() or the CSV)."""
    return {f"{m.header} [{m.key}]": m.definition for m in columns(comp)}


def one_split_note(comp: Comparison) -> str:
    """Why one split cannot say how sure the answer is, and what would: true for each data
    set (the survey's published protocol is one fixed split; the others repeat)."""
    fixed = comp.data.reference == "survey"
    if comp.protocol.name == "standard" and fixed:
        return ("One split only: the survey's standard protocol is a single fixed split (16 "
                "calibration profiles train, 4 hold-outs test), so there is no estimate of "
                "how sure this is; the lecture protocol with other --seed values shows how "
                "much a random split moves the numbers.")
    if fixed:
        return ("One split only, so there is no estimate of how sure this is; other --seed "
                "values give other random splits (the survey's standard protocol is one "
                "fixed split too).")
    return ("One split only, so there is no estimate of how sure this is; the 'standard' "
            "protocol repeats the comparison over several splits.")


def answer_text(comp: Comparison) -> str:
    """The answer first: which model to use, and how sure that is."""
    a = comp.answer()
    if "runner_up" not in a:
        return f"Use {a['best']} (the only model compared)."
    rel = a["difference"] / a["runner_up_value"] if a["runner_up_value"] else 0.0
    name = comp.metric.header.replace("(original scale)", "").removeprefix("test ").strip()
    text = (f"Use {a['best']} for these data: test {name} {a['best_value']:#.4g} against "
            f"{a['runner_up_value']:#.4g} for the runner-up, {a['runner_up']} "
            f"({rel:.1%} lower).")
    if a["splits"] < 2:
        return text + " " + one_split_note(comp)
    verdict = ("larger than the split-to-split SD" if a["clear"] else
               "NOT larger than the split-to-split SD: the two are not clearly apart")
    return text + (f" Paired over {a['splits']} splits the difference is "
                   f"{a['difference']:.3g} ± {a['difference_sd']:.3g} (SD), the best wins "
                   f"{a['wins']} of {a['splits']} splits (paired t = {a['t']:.2f}, "
                   f"p = {a['p']:.2g}): {verdict}.")


def fit_notes(comp: Comparison) -> list[tuple[str, str]]:
    """(model, line) for what each family's first-split fit chose or found."""
    return [(r.family.label, line) for r in comp.results if r.model is not None
            for line in r.model.fit_summary()]


def text_report(comp: Comparison) -> str:
    """The table with the protocol and metric definitions printed next to it."""
    lines = [
        answer_text(comp),
        "",
        f"data: {data_line(comp)}",
        f"protocol '{comp.protocol.name}': {comp.protocol.definition}",
        "",
        markdown_table(header(comp), table_rows(comp)),
        "",
        *(f"- {k}: {v}" for k, v in definitions_of(comp).items()),
        f"best: {best_line(comp)}",
        *(f"warning: {w}" for w in comp.warnings()),
        *(f"note: {n}" for n in data_notes(comp)),
    ]
    notes = fit_notes(comp)
    if notes:
        lines += ["", "what the fits chose (first split):",
                  *(f"- {model}: {line}" for model, line in notes)]
    return "\n".join(lines)


def data_line(comp: Comparison) -> str:
    d = comp.data
    classes = f", classes {', '.join(d.classes)}" if d.classes else ""
    return (f"{d.name} ({d.X.shape[0]} rows, {d.n_tasks} tasks, target {d.target_name}: "
            f"{comp.kind.noun}{classes})")


def best_line(comp: Comparison) -> str:
    best = comp.best()
    first = comp.metric
    other = next((m for m in metrics_of(comp.kind) if not m.lower_is_better), None)
    shown = ", ".join(f"{m.header} {best[m.key]:{'.2%' if m.fmt == '%' else '.4f'}}"
                      for m in (first, other) if m is not None)
    return f"{best['model']} ({shown})"


def data_notes(comp: Comparison) -> list[str]:
    """What loading and preparing the data did (kind recognized, rows dropped, values
    imputed), so nothing happens to a user's data without a word."""
    notes = list(comp.data.notes.values())
    first = comp.results[0]
    if first.new_task is not None and first.new_task.any():
        notes.append(f"{int(first.new_task.sum())} test row(s) of tasks held out of training "
                     f"(first split) get each model's population-level prediction")
    return notes + list(comp.prepared_notes)


def per_task_rows(comp: Comparison) -> list[dict]:
    """Mean over splits of each task's test loss (squared error in original units, log
    loss, or Poisson deviance), one column per family; empty where a task had no test rows."""
    sizes = comp.data.task_sizes()
    rows = []
    for t, name in enumerate(comp.data.task_names):
        row = {"task": name, "rows": int(sizes[t])}
        for res in comp.results:
            vals = np.array([m[t] for m in res.per_task])
            row[res.family.key] = float(np.nanmean(vals)) if np.isfinite(vals).any() else ""
        rows.append(row)
    return rows


def task_metric_rows(comp: Comparison) -> list[dict]:
    """One row per (task, family): every metric of the target's kind on the task's test
    rows, mean over the splits that tested it (empty where none did, or where the metric is
    undefined for the task)."""
    sizes = comp.data.task_sizes()
    keys = [m.key for m in metrics_of(comp.kind) if m.key != "train_seconds"]
    rows = []
    for t, name in enumerate(comp.data.task_names):
        for res in comp.results:
            row = {"task": name, "rows": int(sizes[t]), "family": res.family.key}
            for k in keys:
                vals = np.array([m[k][t] for m in res.task_metrics], dtype=np.float64)
                row[k] = float(np.nanmean(vals)) if np.isfinite(vals).any() else ""
            rows.append(row)
    return rows


def gain_png(comp: Comparison, baseline: str, shared: str,
             metric: str | None = None) -> bytes | None:
    """Per-task test loss (or ``metric``, e.g. AUC, from each task's test rows) of a
    sharing family against a per-task baseline; gains are below the diagonal for a loss,
    above it for a score."""
    fams = {r.family.key: r for r in comp.results}
    if baseline not in fams or shared not in fams:
        return None

    def values(res) -> np.ndarray:
        parts = res.per_task if metric is None else [m[metric] for m in res.task_metrics]
        return np.nanmean(np.stack(parts), axis=0)

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # tasks never tested: NaN, left out
        a, b = values(fams[baseline]), values(fams[shared])
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if not a.size:
        return None
    fig, ax = subplots(figsize=(4.6, 4.2), dpi=110)
    ax.scatter(a, b, s=12, alpha=0.6)
    lo = 0.0 if metric is None else float(min(a.min(), b.min()))
    hi = float(np.nanmax([a.max(), b.max()]))
    ax.plot([lo, hi], [lo, hi], color="grey", linewidth=1)
    what = comp.kind.loss_name if metric is None else next(
        m.header for m in metrics_of(comp.kind) if m.key == metric)
    ax.set_xlabel(f"{fams[baseline].family.label}: per-task test {what}")
    ax.set_ylabel(f"{fams[shared].family.label}: per-task test {what}")
    lower = metric is None or next(m.lower_is_better for m in metrics_of(comp.kind)
                                   if m.key == metric)
    gain = int((b < a).sum()) if lower else int((b > a).sum())
    ax.set_title(f"{gain} of {len(a)} tasks gain from sharing", fontsize=10)
    fig.tight_layout()
    return figure_png(fig)


PAGE_CSS = ("table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
            "text-align:right}td:first-child,th:first-child{text-align:left}"
            "figure{display:inline-block;margin:.5em}img{max-width:520px}")


def html_report(comp: Comparison, pictures: dict[str, tuple[str, bytes]]) -> str:
    """The whole report as a page of its own (report.html)."""
    return page_html(f"{comp.data.name} multi-task comparison", report_body(comp, pictures))


def page_html(title: str, body: str) -> str:
    """A report page: its title, the comparison's styles, the body."""
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>netscope: {html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
{PAGE_CSS}</style></head><body>
{body}
</body></html>"""


def notebook_html(comp: Comparison, pictures: dict[str, tuple[str, bytes]]) -> str:
    """The same report as a notebook output: styles scoped to it, pictures sized to the
    cell."""
    from netscope.render.notebook import fragment

    return fragment(report_body(comp, pictures),
                    "figure{display:inline-block;margin:.5em;max-width:48%}"
                    "h1{font-size:1.4em}h2{font-size:1.15em}")


def short_text(comp: Comparison) -> str:
    """A comparison's text form: the answer and the table, not its arrays."""
    return "\n".join([f"Comparison on {comp.data.name} ({comp.data.X.shape[0]} rows, "
                      f"{comp.data.n_tasks} tasks), protocol '{comp.protocol.name}', "
                      f"{len(comp.protocol.splits)} split(s)", answer_text(comp), "",
                      markdown_table(header(comp), table_rows(comp))])


def report_body(comp: Comparison, pictures: dict[str, tuple[str, bytes]]) -> str:
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in table_rows(comp))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header(comp))
    defs = "".join(f"<li><b>{k}</b>: {html.escape(v)}</li>"
                   for k, v in definitions_of(comp).items())
    figs = "".join(f"<figure>{img_tag(png, name)}<figcaption>{html.escape(name)}</figcaption>"
                   f"</figure>" for name, (_, png) in pictures.items())
    notes = "".join(f"<li><b>{html.escape(m)}</b>: {html.escape(line)}</li>"
                    for m, line in fit_notes(comp))
    chose = f"<h2>What the fits chose (first split)</h2><ul>{notes}</ul>" if notes else ""
    warnings = "".join(f'<p style="color:#b00"><b>Warning</b>: {html.escape(w)}</p>'
                       for w in comp.warnings())
    return f"""<h1>Multi-task comparison: {html.escape(comp.data.name)}</h1>
<p style="font-size:1.15em"><b>{html.escape(answer_text(comp))}</b></p>
<p>Data: {html.escape(data_line(comp))}.</p>{notes_html(comp)}
<p><b>Protocol '{html.escape(comp.protocol.name)}'</b>: {html.escape(comp.protocol.definition)}</p>
<table><tr>{head}</tr>{rows}</table>
<p>Best: <b>{html.escape(best_line(comp))}</b>. Values are mean ± SD over splits where
there are several.</p>{warnings}<ul>{defs}</ul>{chose}
<h2>{html.escape(picture_heading(comp))}</h2>{figs}"""


def picture_heading(comp: Comparison) -> str:
    first = ("ROC curves and reliability diagrams (first split)" if comp.data.classes
             else "Bland-Altman plots (first split, original scale)")
    return f"{first}, per-task gains, and how the models relate the tasks"


def notes_html(comp: Comparison) -> str:
    notes = data_notes(comp)
    if not notes:
        return ""
    return "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>"


def report_pictures(comp: Comparison) -> dict[str, tuple[str, bytes]]:
    """caption -> (file name, PNG): a Bland-Altman plot per family, per-task gain plots."""
    pictures: dict[str, tuple[str, bytes]] = {}
    if comp.data.classes:
        pictures.update(classifier_pictures(comp))
    else:
        for res in comp.results:
            pictures[f"Bland-Altman: {res.family.label}"] = (
                f"bland_altman_{res.family.key}.png",
                bland_altman_png(res.y_true, res.y_pred, res.family.label,
                                 comp.data.target_name))
    for shared in (r.family.key for r in comp.results  # strategies: balancing_pictures
                   if r.family.task_gain and r.family.balancing == "sum"):
        png = gain_png(comp, "ridge-per-task", shared)
        if png is not None:
            pictures[f"per-task gain: {shared} vs ridge per task"] = (f"gain_{shared}.png", png)
        auc = gain_png(comp, "ridge-per-task", shared, "auc") if comp.data.classes and all(
            r.task_metrics for r in comp.results) else None
        if auc is not None:
            pictures[f"per-task AUC gain: {shared} vs ridge per task"] = (
                f"gain_auc_{shared}.png", auc)
    pictures.update(task_relation_pictures(comp))
    pictures.update(balancing_pictures(comp))
    return pictures


def classifier_pictures(comp: Comparison) -> dict[str, tuple[str, bytes]]:
    """ROC curves and a reliability diagram of every model (first split). Several classes:
    the ROC of every (row, class) pair pooled (micro-average, one-vs-rest) labelled with
    the macro AUC of the table, and the reliability of each row's most probable class."""
    from netscope.render.classifier import reliability_png, roc_png

    auc = next(m for m in metrics_of(comp.kind) if m.key == "auc")
    if comp.kind.name == "binary":
        positive = comp.data.classes[1]
        curves = [(r.family.label, r.y_true, r.y_pred, auc.fn(r.y_true, r.y_pred, 1.0))
                  for r in comp.results]
        return {"ROC curves": ("roc.png", roc_png(curves, f"ROC, positive class "
                                                          f"{positive!r}")),
                "reliability diagram": ("reliability.png", reliability_png(
                    curves, f"reliability, positive class {positive!r}"))}
    k = len(comp.data.classes)
    roc, top = [], []
    for r in comp.results:
        onehot = np.eye(k)[r.y_true.astype(np.int64)]
        roc.append((r.family.label, onehot.ravel(), r.y_pred.ravel(),
                    auc.fn(r.y_true, r.y_pred, 1.0)))
        top.append((r.family.label, (r.y_pred.argmax(1) == r.y_true).astype(float),
                    r.y_pred.max(1)))
    return {"ROC curves": ("roc.png", roc_png(roc, f"ROC of {k} classes, one-vs-rest pooled "
                                                   f"(AUC: macro)")),
            "reliability diagram": ("reliability.png", reliability_png(
                top, "reliability of the most probable class", "observed share correct",
                "mean probability of the most probable class (bin)"))}


MAP_TASKS = 3  # a 2-D map of tasks relative to each other needs three


def task_relation_pictures(comp: Comparison) -> dict[str, tuple[str, bytes]]:
    """How the tasks relate, as the models learned it (first split): each model's
    ``task_relations()``, a correlation matrix as a clustered heat map and a 2-D map (MDS),
    per-task vectors as a 2-D map (PCA). Points are coloured by each task's mean target."""
    from netscope.render.task_maps import correlation_heatmap_png, mds_2d, pca_2d, task_map_png

    data = comp.data
    if data.n_tasks < MAP_TASKS:  # said in Comparison.warnings()
        return {}
    means = np.bincount(data.task, weights=data.y, minlength=data.n_tasks) / \
        np.maximum(data.task_sizes(), 1)
    label = f"task mean {data.target_name}"
    out: dict[str, tuple[str, bytes]] = {}
    for res in comp.results:
        rel = res.model.task_relations() if res.model is not None else None
        if rel is None:
            continue
        known = np.asarray(res.model.tasks_, dtype=np.int64)  # the tasks it was fit on
        names, colour = [data.task_names[i] for i in known], means[known]
        if rel.kind == "correlation":
            out[f"{rel.source}, clustered"] = (
                f"task_correlations_{rel.file}.png",
                correlation_heatmap_png(rel.values, f"{data.n_tasks} tasks: {rel.source}"))
            xy, how = mds_2d(rel.values), "MDS"
        else:
            xy, how = pca_2d(rel.values), "PCA"
        out[f"task map from {rel.source}"] = (
            f"task_map_{rel.file}.png",
            task_map_png(xy, names, colour, f"tasks placed by {rel.source} ({how})", label))
    return out


def write_comparison(comp: Comparison, out_dir: str | Path) -> dict[str, Path]:
    """Write results.csv, runs.csv, per_task.csv, results.json, PNGs and report.html."""
    out = Path(out_dir)
    paths: dict[str, Path] = {}
    summary = comp.summary()
    paths["results.csv"] = write_text(out / "results.csv", csv_text(summary))
    runs = [{"family": r.family.key, **run} for r in comp.results for run in r.runs]
    paths["runs.csv"] = write_text(out / "runs.csv", csv_text(runs))
    paths["per_task.csv"] = write_text(out / "per_task.csv", csv_text(per_task_rows(comp)))
    gains = per_task_gains(comp)
    if gains:
        paths["balancing.csv"] = write_text(out / "balancing.csv", csv_text(gains))
    if all(r.task_metrics for r in comp.results):
        paths["per_task_metrics.csv"] = write_text(out / "per_task_metrics.csv",
                                                   csv_text(task_metric_rows(comp)))
    doc = {"dataset": comp.data.name, "built_in": comp.data.reference,
           "protocol": comp.protocol.name,
           "target": {"name": comp.data.target_name, "kind": comp.kind.name,
                      "classes": list(comp.data.classes)},
           "ranked_by": comp.metric.key, "notes": data_notes(comp),
           "protocol_definition": comp.protocol.definition,
           "definitions": {m.key: m.definition for m in columns(comp)},
           "settings": comp.settings.as_dict(),
           "families": [{"key": r.family.key, "label": r.family.label,
                         "description": r.family.description, "kinds": list(r.family.kinds),
                         "settings": {k: list(v) if isinstance(v, tuple) else v
                                      for k, v in r.family.chosen(comp.settings).items()}}
                        for r in comp.results],
           "summary": summary, "runs": runs, "warnings": comp.warnings(),
           "balancing": gains,
           "fit_notes": [{"model": m, "note": line} for m, line in fit_notes(comp)]}
    paths["results.json"] = write_text(out / "results.json", json.dumps(doc, indent=2))
    pictures = report_pictures(comp)
    for file, png in pictures.values():
        paths[file] = write_bytes(out / file, png)
    paths["report.html"] = write_text(out / "report.html", html_report(comp, pictures))
    return paths
