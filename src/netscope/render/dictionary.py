"""A dictionary at a glance: its training curve, how often each feature is active, and how
many features each channel serves (polysemanticity)."""

from __future__ import annotations

import numpy as np

from netscope.render.png import figure_png, subplots


def dictionary_png(losses: list[float], q, title: str) -> bytes:
    """Three panels: reconstruction error per epoch, feature usage (sorted), and the
    histogram of features per channel. ``q`` is the dictionary's ``Quality``."""
    fig, axes = subplots(1, 3, figsize=(12, 3.4), dpi=100)
    ax = axes[0]
    ax.plot(np.arange(1, len(losses) + 1), losses, marker="o", markersize=2, linewidth=1)
    ax.set_xlabel("epoch (NMF: iteration)")
    ax.set_ylabel("mean squared error (scaled)")
    ax.set_title(f"explained variance {q.explained_variance:.1%}", fontsize=9)
    ax = axes[1]
    usage = np.sort(q.usage)[::-1]
    ax.bar(np.arange(len(usage)), usage, width=1.0)
    ax.set_xlabel("feature (by usage)")
    ax.set_ylabel("share of samples active")
    ax.set_title(f"mean L0 {q.mean_l0:.2f}, {q.dead} dead", fontsize=9)
    ax = axes[2]
    used = q.features_per_channel[q.features_per_channel > 0]
    ax.hist(used, bins=min(30, max(5, len(used) // 4)))
    ax.set_xlabel("features per channel (effective number)")
    ax.set_ylabel("channels")
    ax.set_title(f"median {np.median(used) if used.size else 0:.2f}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return figure_png(fig)


def craft_png(images: list[tuple[str, np.ndarray]], importance, class_name: str,
              top: int = 5) -> bytes:
    """CRAFT's view of a class: the features ranked by importance (bars), and for each
    image its top features' code maps over it (upsampled from the layer's grid)."""
    from netscope.render.heatmap import overlay

    order = importance.ranked()[:top]
    rows = 1 + len(images)
    fig, axes = subplots(rows, top + 1, figsize=(2.1 * (top + 1), 2.1 * rows + 0.4),
                         squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    bar = axes[0, 0]
    bar.axis("on")
    ranked = importance.ranked()
    bar.bar(np.arange(len(ranked)), importance.importance[ranked], width=0.9)
    bar.set_title("total Sobol index", fontsize=8)
    bar.set_xticks([])
    for col, k in enumerate(order, start=1):
        axes[0, col].text(0.5, 0.5, f"feature {k}\n{importance.importance[k]:.3f}",
                          ha="center", va="center", fontsize=9)
    for row, (name, rgb) in enumerate(images, start=1):
        axes[row, 0].imshow(rgb)
        axes[row, 0].set_title(name[:24], fontsize=7)
        H, W = rgb.shape[:2]
        for col, k in enumerate(order, start=1):
            heat = _upsampled(importance.codes[row - 1, k], (H, W))
            top_value = float(importance.codes[:, k].max()) or 1.0
            axes[row, col].imshow(overlay(rgb, np.clip(heat / top_value, 0, 1)))
    fig.suptitle(f"CRAFT: the dictionary features behind {class_name}", fontsize=10)
    fig.tight_layout()
    return figure_png(fig, dpi=80)


def _upsampled(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(grid, dtype=np.float32))[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def tcav_png(results, class_name: str) -> bytes:
    """TCAV scores per concept and layer (mean over random sets, with each run's score as a
    dot), beside the scores random sets give each other; non-significant concepts hatched."""
    fig, ax = subplots(figsize=(max(4.5, 1.2 * len(results) + 1.5), 3.6), dpi=100)
    for i, t in enumerate(results):
        ax.bar(i - 0.2, t.score, width=0.4, color="tab:blue",
               hatch=None if t.significant else "//", edgecolor="white")
        ax.scatter(np.full(len(t.scores), i - 0.2), t.scores, s=8, color="black", zorder=3)
        ax.bar(i + 0.2, float(np.mean(t.random_scores)), width=0.4, color="lightgrey")
        ax.scatter(np.full(len(t.random_scores), i + 0.2), t.random_scores, s=8,
                   color="dimgrey", zorder=3)
    ax.set_xticks(range(len(results)))
    ax.set_xticklabels([f"{t.concept}\n{t.layer}\np={t.p_value:.2g}" for t in results],
                       fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("TCAV score (share of images)")
    ax.set_title(f"concepts for {class_name} (grey: random sets; hatched: not significant)",
                 fontsize=9)
    fig.tight_layout()
    return figure_png(fig)


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


def circuit_html(circuit, class_name: str, atlas: str | None = None) -> str:
    """The circuit as a page: an SVG graph whose nodes link to their atlas pages (``atlas``:
    the atlas folder, relative to the page) and whose edges and nodes show their numbers
    (and the validation's) on hover, and the tables."""
    import html as _html

    from netscope.vision.units.atlas import layer_slug

    cols, gap_x, gap_y = len(circuit.layers) + 1, 220, 70
    tallest = max((len(circuit.nodes[n]) for n in circuit.layers), default=1)
    width, height = cols * gap_x + 80, (tallest + 1) * gap_y + 40
    pos = {}
    for col, name in enumerate(circuit.layers):
        kept = circuit.nodes[name]
        for row, j in enumerate(kept):
            pos[(name, int(j))] = (60 + col * gap_x,
                                   height / 2 + (row - (len(kept) - 1) / 2) * gap_y)
    out_xy = (60 + len(circuit.layers) * gap_x, height / 2)
    measured = {d["node"]: d["measured"] for d in circuit.checks.get("nodes", [])}
    checked = {d["edge"]: d["measured"] for d in circuit.checks.get("edges", [])}
    wmax = max((abs(w) for *_, w in circuit.edges), default=1.0) or 1.0
    cmax = max((abs(float(circuit.contribution[n][j])) for n in circuit.layers
                for j in circuit.nodes[n]), default=1.0) or 1.0
    parts = []
    for a, i, b, j, w in circuit.edges:
        (x0, y0), (x1, y1) = pos[(a, i)], pos[(b, j)]
        key = f"{a}:{i} -> {b}:{j}"
        tip = f"{key}: weight {w:+.4g}" + (f", removing {a}:{i} moved it {checked[key]:+.4g}"
                                             if key in checked else "")
        parts.append(f"<line x1='{x0}' y1='{y0}' x2='{x1}' y2='{y1}' stroke='"
                     f"{'#d62728' if w >= 0 else '#1f77b4'}' stroke-width='"
                     f"{0.5 + 5 * abs(w) / wmax:.2f}' opacity='0.6'><title>"
                     f"{_html.escape(tip)}</title></line>")
    last = circuit.layers[-1]
    for j in circuit.nodes[last]:
        (x0, y0), c = pos[(last, int(j))], float(circuit.contribution[last][j])
        parts.append(f"<line x1='{x0}' y1='{y0}' x2='{out_xy[0]}' y2='{out_xy[1]}' stroke='"
                     f"{'#d62728' if c >= 0 else '#1f77b4'}' stroke-width='"
                     f"{0.5 + 5 * abs(c) / cmax:.2f}' opacity='0.4'/>")
    for (name, j), (x, y) in pos.items():
        c = float(circuit.contribution[name][j])
        key = f"{name}:{j}"
        tip = f"{key}: contribution {c:+.4g}" + (f", removing it: {measured[key]:+.4g}"
                                                  if key in measured else "")
        dot = (f"<circle cx='{x}' cy='{y}' r='{6 + 16 * abs(c) / cmax:.1f}' fill='"
               f"{'#d62728' if c >= 0 else '#1f77b4'}'><title>{_html.escape(tip)}</title>"
               f"</circle><text x='{x + 22}' y='{y + 4}' font-size='11'>{j}</text>")
        link = f"{atlas}/{layer_slug(name)}/{j}.html" if atlas else None
        parts.append(f"<a href='{_html.escape(link)}'>{dot}</a>" if link else dot)
    for col, name in enumerate(circuit.layers):
        parts.append(f"<text x='{60 + col * gap_x}' y='18' font-size='12' "
                     f"text-anchor='middle'>{_html.escape(name)}</text>")
    parts.append(f"<rect x='{out_xy[0] - 9}' y='{out_xy[1] - 9}' width='18' height='18'/>"
                 f"<text x='{out_xy[0] + 14}' y='{out_xy[1] + 4}' font-size='12'>"
                 f"{_html.escape(class_name)} {circuit.score:.3g}</text>")
    svg = f"<svg width='{width}' height='{height}' role='img'>{''.join(parts)}</svg>"
    c = circuit.checks
    summary = "" if not c else (
        f"<p>Removing each node: correlation of the measured with the predicted change "
        f"{c['correlation']:+.2f}, wrong sign: {_html.escape(', '.join(c['wrong_sign']) or 'none')}"
        f"; edges: correlation {c['edge_correlation']:+.2f}, wrong sign: "
        f"{_html.escape(', '.join(c['edges_wrong_sign']) or 'none')}; score kept with only the "
        f"graph's nodes: " + ", ".join(f"{_html.escape(k)} {v:.0%}"
                                        for k, v in c["completeness"].items()) + "</p>")
    return (f"<!doctype html><meta charset='utf-8'><title>circuit of "
            f"{_html.escape(class_name)}</title><body style='font-family:sans-serif'>"
            f"<h1>Circuit of {_html.escape(class_name)}</h1><p>Hover a node or an edge for "
            f"its numbers" + (", click a node for its atlas page" if atlas else "") +
            f".</p>{svg}{summary}</body>")
