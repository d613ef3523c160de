"""What the balancing strategies did, drawn: for each family trained with several
strategies, each strategy's per-task test loss against the same family with the course's
plain sum (share of tasks that gain, median relative change)."""

from __future__ import annotations

import warnings

import numpy as np

from netscope.render.png import figure_png, subplots


def per_task_gains(comp) -> list[dict]:
    """One row per (family, strategy other than sum): tasks compared, tasks whose test loss
    fell, median and mean relative change of the per-task loss against the sum variant."""
    by_key = {r.family.key: r for r in comp.results}
    rows = []
    for res in comp.results:
        base = res.family.key.partition("+")[0]
        if res.family.balancing == "sum" or base not in by_key:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # tasks never tested: NaN
            a = np.nanmean(np.stack(by_key[base].per_task), 0)
            b = np.nanmean(np.stack(res.per_task), 0)
        ok = np.isfinite(a) & np.isfinite(b) & (a > 0)
        rel = (b[ok] - a[ok]) / a[ok]
        rows.append({"family": base, "balancing": res.family.balancing,
                     "label": res.family.label, "tasks": int(ok.sum()),
                     "tasks_gaining": int((rel < 0).sum()),
                     "median_change": float(np.median(rel)) if rel.size else float("nan"),
                     "mean_change": float(np.mean(rel)) if rel.size else float("nan")})
    return rows


def balancing_pictures(comp) -> dict[str, tuple[str, bytes]]:
    rows = per_task_gains(comp)
    if not rows:
        return {}
    fig, ax = subplots(figsize=(6.4, 0.45 * len(rows) + 1.4), dpi=110)
    labels = [r["label"] for r in rows]
    change = [100 * r["median_change"] for r in rows]
    colours = ["#2a7" if c < 0 else "#c44" for c in change]
    ax.barh(range(len(rows)), change, color=colours)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.axvline(0, color="grey", linewidth=1)
    for i, r in enumerate(rows):
        ax.annotate(f"{r['tasks_gaining']}/{r['tasks']} tasks gain", (0, i), fontsize=7,
                    xytext=(4, -3), textcoords="offset points")
    ax.set_xlabel(f"median change of per-task test {comp.kind.loss_name} against the same "
                  f"network with the plain sum (%)", fontsize=8)
    ax.invert_yaxis()
    fig.tight_layout()
    return {"per-task gain by balancing strategy (against sum)": ("balancing_gains.png",
                                                                  figure_png(fig))}
