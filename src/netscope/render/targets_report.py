"""What a several-target comparison leaves on disk: per-target tables, the joint networks'
gains over the independent models, the experts each target uses (MMoE, PLE), as CSV, JSON,
pictures and one HTML page."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from netscope.files.atomic import write_bytes, write_text
from netscope.multitask.comparison.metrics import metrics_of, primary
from netscope.multitask.several.compare import TargetsComparison
from netscope.multitask.targets import KINDS
from netscope.render.png import figure_png, img_tag, subplots
from netscope.render.table import csv_text, markdown_table, with_sd


def target_tables(comp: TargetsComparison) -> list[tuple[str, list[str], list[list[str]]]]:
    """Per target: its heading, the table's header and rows (metrics of its kind)."""
    out = []
    rows = comp.summary()
    for name, kind in zip(comp.data.target_names, comp.data.kinds, strict=True):
        ms = list(metrics_of(KINDS[kind]))
        mine = [r for r in rows if r["target"] == name]
        conflict = any("conflict_share" in r for r in mine)
        head = ["model", *(m.header for m in ms), *(["conflicting steps"] if conflict else [])]
        body = []
        for r in mine:
            cells = [with_sd(r[m.key], r[f"{m.key}_sd"], r["splits"],
                             ".2%" if m.fmt == "%" else m.fmt) for m in ms]
            if conflict:
                cells.append(f"{r['conflict_share']:.0%}" if "conflict_share" in r else "")
            body.append([r["model"], *cells])
        out.append((f"target {name!r} ({KINDS[kind].noun})", head, body))
    return out


def answer_lines(comp: TargetsComparison) -> list[str]:
    lines = []
    for name, row in comp.best().items():
        m = primary(KINDS[row["kind"]])
        lines.append(f"{name}: use {row['model']} (test {m.header.removeprefix('test ')} "
                     f"{row[m.key]:#.4g})")
    return lines


def gain_rows(comp: TargetsComparison) -> tuple[list[str], list[list[str]]]:
    head = ["model", "target", "vs MLP per target", "vs best independent", "best independent"]
    rows = []
    for g in comp.gains():
        rows.append([g["model"], g["target"],
                     f"{g['change_vs_mlp']:+.1%}" if "change_vs_mlp" in g else "",
                     f"{g['change_vs_best_independent']:+.1%}", g["best_independent"]])
    return head, rows


def text_report(comp: TargetsComparison) -> str:
    d = comp.data
    lines = ["Per target, the best model (lower primary metric):",
             *(f"- {line}" for line in answer_lines(comp)), "",
             f"data: {d.name}, {d.X.shape[0]} rows, {d.X.shape[1]} features, "
             f"{d.n_targets} targets; protocol: {len(comp.splits)} random row split(s) "
             f"({comp.splits[0].name}{', ...' if len(comp.splits) > 1 else ''}); features "
             f"and number targets standardized with training rows; a target missing on a row "
             f"is left out of that row's loss.", ""]
    for heading, head, body in target_tables(comp):
        lines += [heading, markdown_table(head, body), ""]
    head, body = gain_rows(comp)
    if body:
        lines += ["change of the primary metric against the independent models (negative: "
                  "the joint model is better; mean over splits):",
                  markdown_table(head, body), ""]
    lines += [f"note: {n}" for n in [*d.missing_lines(), *d.notes.values()]]
    lines += [f"warning: {w}" for w in comp.warnings()]
    notes = fit_notes(comp)
    if notes:
        lines += ["", "what the fits chose (first split):", *(f"- {m}: {n}" for m, n in notes)]
    return "\n".join(lines)


def fit_notes(comp: TargetsComparison) -> list[tuple[str, str]]:
    out = []
    for key, runs in comp.runs.items():
        models = runs[0].models or []
        for j, model in enumerate(models):  # one model per target, or one for all
            who = comp.label(key) + (f" ({comp.data.target_names[j]})" if len(models) > 1
                                     else "")
            out += [(who, line) for line in model.fit_summary()]
    return out


def gates_png(comp: TargetsComparison, key: str, gates: np.ndarray) -> bytes:
    """Targets x experts: each target's mean gate weight on each expert (test rows)."""
    fig, ax = subplots(figsize=(1.2 + 0.55 * gates.shape[1], 1.0 + 0.5 * gates.shape[0]),
                       dpi=110)
    im = ax.imshow(gates, cmap="viridis", vmin=0, vmax=max(float(gates.max()), 1e-9),
                   aspect="auto")
    shared = comp.settings.experts
    ax.set_xticks(range(gates.shape[1]),
                  [f"S{i + 1}" if i < shared else f"own {i - shared + 1}"
                   for i in range(gates.shape[1])], fontsize=7)
    ax.set_yticks(range(gates.shape[0]), comp.data.target_names, fontsize=8)
    for (i, j), v in np.ndenumerate(gates):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                color="white" if v < 0.6 * gates.max() else "black")
    ax.set_title(f"{comp.label(key)}: experts' use per target", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.05)
    fig.tight_layout()
    return figure_png(fig)


def pictures(comp: TargetsComparison) -> dict[str, tuple[str, bytes]]:
    out = {}
    for key, gates in comp.gates().items():
        out[f"experts' use per target: {comp.label(key)}"] = (f"gates_{key}.png",
                                                             gates_png(comp, key, gates))
    return out


def write_targets(comp: TargetsComparison, out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    paths: dict[str, Path] = {}
    summary = comp.summary()
    paths["results.csv"] = write_text(out / "results.csv", csv_text(summary))
    runs = [{"family": k, "split": comp.splits[i].name, "target": name, **r.scores[j],
             "train_seconds": r.seconds}
            for k, rs in comp.runs.items() for i, r in enumerate(rs)
            for j, name in enumerate(comp.data.target_names)]
    paths["runs.csv"] = write_text(out / "runs.csv", csv_text(runs))
    gains = comp.gains()
    if gains:
        paths["gains.csv"] = write_text(out / "gains.csv", csv_text(gains))
    gates = [{"family": k, "target": comp.data.target_names[j],
              **{f"expert_{e + 1}": float(v) for e, v in enumerate(g[j])}}
             for k, g in comp.gates().items() for j in range(g.shape[0])]
    if gates:
        paths["gates.csv"] = write_text(out / "gates.csv", csv_text(gates))
    doc = {"dataset": comp.data.name, "layout": "several targets",
           "targets": [{"name": n, "kind": k, "classes": list(c)} for n, k, c in
                        zip(comp.data.target_names, comp.data.kinds, comp.data.classes,
                            strict=True)],
           "splits": [s.name for s in comp.splits], "settings": comp.settings.as_dict(),
           "summary": summary, "runs": runs, "gains": gains, "gates": gates,
           "notes": [*comp.data.missing_lines(), *comp.data.notes.values()],
           "warnings": comp.warnings(),
           "fit_notes": [{"model": m, "note": n} for m, n in fit_notes(comp)]}
    paths["results.json"] = write_text(out / "results.json", json.dumps(doc, indent=2))
    pics = pictures(comp)
    for file, png in pics.values():
        paths[file] = write_bytes(out / file, png)
    paths["report.html"] = write_text(out / "report.html", html_page(comp, pics))
    return paths


def _table_html(head: list[str], body: list[list[str]]) -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in body)
    return f"<table><tr>{h}</tr>{rows}</table>"


def html_page(comp: TargetsComparison, pics: dict[str, tuple[str, bytes]]) -> str:
    from netscope.render.comparison import page_html

    answer = "".join(f"<li>{html.escape(line)}</li>" for line in answer_lines(comp))
    tables = "".join(f"<h2>{html.escape(h)}</h2>{_table_html(head, body)}"
                     for h, head, body in target_tables(comp))
    head, body = gain_rows(comp)
    gains = (f"<h2>Gains over the independent models</h2><p>Change of each target's primary "
             f"metric (negative: the joint model is better), mean over splits.</p>"
             f"{_table_html(head, body)}") if body else ""
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in
                    [*comp.data.missing_lines(), *comp.data.notes.values(), *comp.warnings()])
    chose = "".join(f"<li><b>{html.escape(m)}</b>: {html.escape(n)}</li>"
                    for m, n in fit_notes(comp))
    figs = "".join(f"<figure>{img_tag(png, name)}<figcaption>{html.escape(name)}</figcaption>"
                   f"</figure>" for name, (_, png) in pics.items())
    name = html.escape(comp.data.name)
    return page_html(f"{comp.data.name}, several targets", f"""<h1>Several targets: {name}</h1>
<p><b>Per target, the best model:</b></p><ul>{answer}</ul>
<p>{len(comp.splits)} random row split(s); values are mean ± SD over splits where there are
several. A target missing on a row is left out of that row's loss.</p>
<ul>{notes}</ul>{tables}{gains}
{f'<h2>What the fits chose (first split)</h2><ul>{chose}</ul>' if chose else ''}
{f"<h2>Experts' use per target</h2>{figs}" if figs else ''}""")
