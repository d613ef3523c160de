"""Generated grouped data for the "data people bring" benchmarks (issue 26): random
intercepts and slopes per task plus a smooth nonlinearity, as numbers, yes/no or counts,
optionally with missing cells. Writes the CSV and the test-row mask of netscope's lecture
split (60/40 inside each task, seed 0), so every tool is scored on the same rows.

    python benchmarks/grouped_data.py --tasks 200 --rows 100 --kind regression --out /tmp/g
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def make(tasks: int, rows: int, kind: str = "regression", seed: int = 0,
         missing: float = 0.0) -> tuple[pd.DataFrame, float]:
    """The table, and the best possible score on it (the true mean's explained variance for
    numbers, its log loss for yes/no) as a reference."""
    rng = np.random.default_rng(seed)
    d = 5
    X = rng.normal(size=(tasks * rows, d))
    t = np.repeat(np.arange(tasks), rows)
    b0, b1 = rng.normal(0, 1.0, tasks), rng.normal(0, 0.7, tasks)
    f = X[:, 0] + 0.5 * X[:, 1] - 0.5 * X[:, 2] + np.sin(2 * X[:, 3]) + 0.5 * X[:, 4] ** 2
    eta = f + b0[t] + b1[t] * X[:, 1]
    if kind == "regression":
        y = eta + rng.normal(0, 0.5, tasks * rows)
        best = 1 - 0.25 / np.var(y)
    elif kind == "binary":
        p = 1 / (1 + np.exp(-eta))
        y = (rng.uniform(size=tasks * rows) < p).astype(int)
        best = float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))
    elif kind == "multiclass":  # three classes: softmax of (0, eta, a second task effect)
        b2 = rng.normal(0, 1.0, tasks)
        logits = np.column_stack([np.zeros_like(eta), eta, 0.8 * X[:, 0] - X[:, 3] + b2[t]])
        P = np.exp(logits - logits.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        y = (rng.uniform(size=(tasks * rows, 1)) > P.cumsum(1)).sum(1)
        best = float(-np.mean(np.log(P[np.arange(y.size), y])))
        y = np.array(["low", "mid", "high"])[y]
    else:
        y = rng.poisson(np.exp(0.4 * eta - 0.5))
        best = float("nan")
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(d)])
    if missing:
        df.loc[rng.uniform(size=len(df)) < missing, "x2"] = np.nan
    df["task"] = [f"g{k}" for k in t]
    df["y"] = y
    return df, best


def test_mask(csv: Path) -> np.ndarray:
    """netscope's lecture split of the file: True on test rows (in file order)."""
    from netscope.data import load_table
    from netscope.multitask import protocols

    data = load_table(csv, "task", "y")
    split = protocols.lecture(data).splits[0]
    mask = np.zeros(len(data.y), bool)
    mask[split.test] = True
    return mask


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tasks", type=int, default=200)
    p.add_argument("--rows", type=int, default=100)
    p.add_argument("--kind", choices=["regression", "binary", "multiclass", "count"],
                   default="regression")
    p.add_argument("--missing", type=float, default=0.0)
    p.add_argument("--out", default="/tmp/grouped")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    df, best = make(a.tasks, a.rows, a.kind, missing=a.missing)
    csv = out / f"{a.kind}-{a.tasks}x{a.rows}.csv"
    df.to_csv(csv, index=False)
    mask = test_mask(csv)
    np.save(csv.with_suffix(".test.npy"), mask)
    pd.DataFrame({"test": mask.astype(int)}).to_csv(csv.with_suffix(".test.csv"), index=False)
    print(f"{csv} (best possible: {best:.4f})")


if __name__ == "__main__":
    main()
