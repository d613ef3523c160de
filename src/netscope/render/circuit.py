"""A circuit drawn: the layered graph as a picture, the expanded weights of linearly joined
layers as kernels, and the interactive page (inside an atlas site, its nodes open their unit
or feature pages)."""

from __future__ import annotations

import html

import numpy as np

from netscope.render.png import figure_png, subplots

RED, BLUE = "#d62728", "#1f77b4"


def circuit_png(circuit, class_name: str, names: dict[str, str] | None = None) -> bytes:
    """The circuit as a layered graph: a column per layer (the class at the right), a
    circle per node sized by |contribution| (red: raises the score, blue: lowers it), a
    line per edge as wide as |weight|; with validation, each node's measured effect of
    removing it under its label."""
    names = names or {}
    fig, ax = subplots(figsize=(2.6 * (len(circuit.layers) + 1), 4.8), dpi=100)
    pos = {}
    biggest = max((float(np.abs(circuit.contribution[n][circuit.nodes[n]]).max())
                   for n in circuit.layers if len(circuit.nodes[n])), default=1.0) or 1.0
    measured = {d["node"]: d["measured"] for d in circuit.checks.get("nodes", [])}
    for col, name in enumerate(circuit.layers):
        kept = circuit.nodes[name]
        for row, j in enumerate(kept):
            y = (len(kept) - 1) / 2 - row
            pos[(name, int(j))] = (col, y)
            c = float(circuit.contribution[name][j])
            ax.scatter([col], [y], s=80 + 900 * abs(c) / biggest, zorder=3,
                       color="tab:red" if c >= 0 else "tab:blue", alpha=0.8)
            label = f"{names.get(name, 'unit')} {int(j)}\n{c:+.3g}"
            if f"{name}:{int(j)}" in measured:
                label += f"\nremoved: {measured[f'{name}:{int(j)}']:+.3g}"
            ax.text(col + 0.12, y, label, fontsize=7, va="center")
        ax.text(col, (len(kept) + 1) / 2, name, ha="center", fontsize=8, weight="bold")
    out_col = len(circuit.layers)
    ax.scatter([out_col], [0], s=300, marker="s", color="black", zorder=3)
    ax.text(out_col + 0.12, 0, f"{class_name}\n{circuit.score:.3g}", fontsize=8, va="center")
    wmax = max((abs(w) for *_, w in circuit.edges), default=1.0) or 1.0
    for a, i, b, j, w in circuit.edges:
        (x0, y0), (x1, y1) = pos[(a, i)], pos[(b, j)]
        ax.plot([x0, x1], [y0, y1], color="tab:red" if w >= 0 else "tab:blue",
                linewidth=0.5 + 4 * abs(w) / wmax, alpha=0.6, zorder=1)
    last = circuit.layers[-1]
    for j in circuit.nodes[last]:
        x0, y0 = pos[(last, int(j))]
        c = float(circuit.contribution[last][j])
        ax.plot([x0, out_col], [y0, 0], color="tab:red" if c >= 0 else "tab:blue",
                linewidth=0.5 + 4 * abs(c) / biggest, alpha=0.6, zorder=1)
    tallest = max((len(circuit.nodes[n]) for n in circuit.layers), default=1)
    ax.set_ylim(-(tallest + 1) / 2, (tallest + 3) / 2)
    ax.axis("off")
    title = f"circuit of {class_name}"
    if circuit.checks:
        title += (f": removal vs prediction r = {circuit.checks['correlation']:.2f}, "
                  f"{len(circuit.checks['wrong_sign'])} wrong sign")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return figure_png(fig)


def expanded_png(circuit, names: dict[str, str] | None = None) -> bytes | None:
    """The expanded weights of each linearly joined layer pair: a kernel per (later node,
    earlier node) of the graph, red positive, blue negative, one colour scale per pair; None
    when no pair is linear."""
    names = names or {}
    pairs = [(a, b, e) for (a, b), e in circuit.expanded.items() if e.linear]
    if not pairs:
        return None
    rows = sum(len(circuit.nodes[b]) for _, b, _ in pairs)
    cols = max(len(circuit.nodes[a]) for a, _, _ in pairs)
    fig, axes = subplots(rows, cols, figsize=(1.1 * cols + 1.2, 1.1 * rows + 0.6), dpi=100,
                         squeeze=False)
    r = 0
    for a, b, e in pairs:
        a_nodes = [int(i) for i in circuit.nodes[a]]
        k = e.kernels[:, a_nodes]
        top = float(np.abs(k).max()) or 1.0
        for jb, j in enumerate(circuit.nodes[b]):
            for ja, i in enumerate(a_nodes):
                ax = axes[r, ja]
                ax.imshow(k[jb, ja], cmap="RdBu_r", vmin=-top, vmax=top)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0 or jb == 0:
                    ax.set_title(f"{a} {names.get(a, 'unit')} {i}", fontsize=6)
            axes[r, 0].set_ylabel(f"{b}\n{names.get(b, 'unit')} {int(j)}", fontsize=6)
            for ja in range(len(a_nodes), cols):
                axes[r, ja].axis("off")
            r += 1
    fig.suptitle(f"expanded weights (red +, blue -; one scale per layer pair, largest "
                 f"{max(float(np.abs(e.kernels).max()) for *_, e in pairs):.3g})", fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


def circuit_html(circuit, class_name: str, pages: dict | None = None,
                 home: str | None = None) -> str:
    """The circuit as a page: an SVG graph (nodes with their atlas picture and link where
    ``pages`` has them: (layer, node) -> (page, picture or None), relative to this page;
    ``home``: the atlas index), each validated edge labelled with its predicted and measured
    effect, and tables of every node and edge with all their numbers."""
    pages = pages or {}
    svg = _graph_svg(circuit, class_name, pages)
    back = f"<p><a href='{html.escape(home)}'>atlas index</a></p>" if home else ""
    how = ("Nodes: contribution to the class score (activation x gradient, summed over "
           "positions, mean over the images); red raises it, blue lowers it. Edges: the "
           "earlier node's share of the later node's contribution.")
    if circuit.checks:
        how += (f" Checked by intervention ({html.escape(circuit.checks['ablation'])}): "
                f"each edge is labelled predicted / measured change of its later node's "
                f"contribution.")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>circuit of "
            f"{html.escape(class_name)}</title><style>body{{font-family:system-ui,sans-serif;"
            f"margin:1.5em auto;max-width:1200px}}table{{border-collapse:collapse}}td,th{{"
            f"border-bottom:1px solid #ddd;padding:2px 8px;text-align:right}}.note{{"
            f"color:#555;font-size:13px}}</style></head><body>{back}"
            f"<h1>Circuit of {html.escape(class_name)}</h1><p class='note'>{how} Hover for "
            f"numbers" + (", click a node for its page" if pages else "") + f".</p>{svg}"
            f"{_checks_summary(circuit.checks)}{_node_table(circuit, pages)}"
            f"{_edge_table(circuit)}</body></html>")


def _layout(circuit, gap_x=240, gap_y=80) -> tuple[dict, tuple[float, float], int, int]:
    tallest = max((len(circuit.nodes[n]) for n in circuit.layers), default=1)
    width, height = (len(circuit.layers) + 1) * gap_x + 120, (tallest + 1) * gap_y + 40
    pos = {}
    for col, name in enumerate(circuit.layers):
        kept = circuit.nodes[name]
        for row, j in enumerate(kept):
            pos[(name, int(j))] = (70 + col * gap_x,
                                   height / 2 + (row - (len(kept) - 1) / 2) * gap_y)
    return pos, (70 + len(circuit.layers) * gap_x, height / 2), width, height


def _graph_svg(circuit, class_name, pages) -> str:
    pos, out_xy, width, height = _layout(circuit)
    checks = {d["edge"]: d for d in circuit.checks.get("edges", [])}
    measured = {d["node"]: d for d in circuit.checks.get("nodes", [])}
    wmax = max((abs(w) for *_, w in circuit.edges), default=1.0) or 1.0
    cmax = max((abs(float(circuit.contribution[n][j])) for n in circuit.layers
                for j in circuit.nodes[n]), default=1.0) or 1.0
    parts = []
    for a, i, b, j, w in circuit.edges:
        (x0, y0), (x1, y1) = pos[(a, i)], pos[(b, j)]
        key = f"{a}:{i} -> {b}:{j}"
        tip = f"{key}: weight {w:+.4g}"
        ew = circuit.expanded_weight(a, i, b, j)
        tip += "" if ew is None else f", expanded weight {ew:+.4g}"
        label = ""
        if key in checks:
            c = checks[key]
            tip += f", predicted {c['predicted']:+.4g}, measured {c['measured']:+.4g}"
            label = (f"<text x='{(x0 + x1) / 2:.0f}' y='{(y0 + y1) / 2 - 3:.0f}' "
                     f"font-size='9' fill='#444' text-anchor='middle'>{c['predicted']:+.2g} / "
                     f"{c['measured']:+.2g}</text>")
        parts.append(f"<g><line x1='{x0}' y1='{y0}' x2='{x1}' y2='{y1}' stroke='"
                     f"{RED if w >= 0 else BLUE}' stroke-width='{0.5 + 5 * abs(w) / wmax:.2f}'"
                     f" opacity='0.6'/><title>{html.escape(tip)}</title>{label}</g>")
    last = circuit.layers[-1]
    for j in circuit.nodes[last]:
        (x0, y0), c = pos[(last, int(j))], float(circuit.contribution[last][j])
        parts.append(f"<line x1='{x0}' y1='{y0}' x2='{out_xy[0]}' y2='{out_xy[1]}' stroke='"
                     f"{RED if c >= 0 else BLUE}' stroke-width='"
                     f"{0.5 + 5 * abs(c) / cmax:.2f}' opacity='0.4'/>")
    for (name, j), (x, y) in pos.items():
        c = float(circuit.contribution[name][j])
        key = f"{name}:{j}"
        tip = f"{key}: contribution {c:+.4g}"
        if key in measured:
            tip += (f", changing it: predicted {measured[key]['predicted']:+.4g}, measured "
                    f"{measured[key]['measured']:+.4g}")
        page, picture = pages.get((name, j), (None, None))
        dot = (f"<circle cx='{x}' cy='{y}' r='{6 + 14 * abs(c) / cmax:.1f}' fill='"
               f"{RED if c >= 0 else BLUE}'><title>{html.escape(tip)}</title></circle>"
               f"<text x='{x + 24}' y='{y + 4}' font-size='11'>{j}</text>")
        if picture:
            dot += (f"<image href='{html.escape(picture)}' x='{x - 60}' y='{y - 20}' "
                    f"width='40' height='40'><title>{html.escape(tip)}</title></image>")
        parts.append(f"<a href='{html.escape(page)}'>{dot}</a>" if page else dot)
    for col, name in enumerate(circuit.layers):
        parts.append(f"<text x='{70 + col * 240}' y='18' font-size='12' "
                     f"text-anchor='middle'>{html.escape(name)}</text>")
    parts.append(f"<rect x='{out_xy[0] - 9}' y='{out_xy[1] - 9}' width='18' height='18'/>"
                 f"<text x='{out_xy[0] + 14}' y='{out_xy[1] + 4}' font-size='12'>"
                 f"{html.escape(class_name)} {circuit.score:.3g}</text>")
    return f"<svg width='{width}' height='{height}' role='img'>{''.join(parts)}</svg>"


def _checks_summary(c: dict) -> str:
    if not c:
        return ""
    wrong = lambda names: html.escape(", ".join(names) or "none")  # noqa: E731
    kept = ", ".join(f"{html.escape(k)} {v:.0%}" for k, v in c["completeness"].items())
    return (f"<h2>Proof by intervention ({html.escape(c['ablation'])})</h2><p>Nodes: "
            f"correlation of the measured with the predicted change of the class score, image "
            f"by image, {c['correlation']:+.2f}; wrong sign: {wrong(c['wrong_sign'])}. Edges: "
            f"correlation {c['edge_correlation']:+.2f}; wrong sign: "
            f"{wrong(c['edges_wrong_sign'])}. Score kept with only the graph's nodes "
            f"(completeness): {kept}. Cost: {c['forward_passes']} forward passes, "
            f"{c['images_forwarded']} images.</p>")


def _node_table(circuit, pages) -> str:
    measured = {d["node"]: d for d in circuit.checks.get("nodes", [])}
    rows = []
    for name in circuit.layers:
        for j in circuit.nodes[name]:
            key, j = f"{name}:{int(j)}", int(j)
            page = pages.get((name, j), (None, None))[0]
            label = html.escape(key)
            cell = f"<a href='{html.escape(page)}'>{label}</a>" if page else label
            m = measured.get(key)
            rows.append(f"<tr><td style='text-align:left'>{cell}</td><td>"
                        f"{float(circuit.contribution[name][j]):+.4g}</td>"
                        + (f"<td>{m['predicted']:+.4g}</td><td>{m['measured']:+.4g}</td>"
                           if m else "<td></td><td></td>") + "</tr>")
    return ("<h2>Nodes</h2><table><tr><th>node</th><th>contribution</th><th>predicted "
            "change</th><th>measured change</th></tr>" + "".join(rows) + "</table>")


def _edge_table(circuit) -> str:
    checks = {d["edge"]: d for d in circuit.checks.get("edges", [])}
    rows = []
    for a, i, b, j, w in circuit.edges:
        key = f"{a}:{i} -> {b}:{j}"
        ew = circuit.expanded_weight(a, i, b, j)
        c = checks.get(key)
        rows.append(f"<tr><td style='text-align:left'>{html.escape(key)}</td><td>{w:+.4g}</td>"
                    f"<td>{'' if ew is None else f'{ew:+.4g}'}</td>"
                    + (f"<td>{c['predicted']:+.4g}</td><td>{c['measured']:+.4g}</td>"
                       if c else "<td></td><td></td>") + "</tr>")
    linear = [f"{html.escape(a)} -> {html.escape(b)}: "
              + ("linear (expanded weights shown)" if e.linear else
                 f"not linear (off affine by {e.gap:.2g})")
              for (a, b), e in circuit.expanded.items()]
    return ("<h2>Edges</h2>" + (f"<p class='note'>{'; '.join(linear)}.</p>" if linear else "")
            + "<table><tr><th>edge</th><th>weight</th><th>expanded weight</th><th>predicted"
            " change</th><th>measured change</th></tr>" + "".join(rows) + "</table>")


def circuits_list(entries: list[tuple[str, str]]) -> str:
    """The atlas index's list of circuit pages: (class name, page relative to the index)."""
    items = "".join(f"<li><a href='{html.escape(page)}'>{html.escape(name)}</a></li>"
                    for name, page in entries)
    return f"<h2>Circuits</h2><ul>{items}</ul>"
