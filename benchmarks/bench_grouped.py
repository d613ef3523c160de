"""Every family on a grouped_data.py file, netscope's lecture split (the rows the peers'
scripts score): the ranking metric, fit seconds and peak memory, one process per family
so each peak is its own.

    python benchmarks/bench_grouped.py /tmp/g/regression-200x100.csv [--families a,b]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time


def one(csv: str, key: str, kind: str, queue) -> None:
    from netscope.data import load_table
    from netscope.multitask import compare, protocols

    data = load_table(csv, "task", "y", target_kind=kind)
    start = time.perf_counter()
    comp = compare(data, protocols.lecture(data), families=[key])
    wall = time.perf_counter() - start
    row = comp.summary()[0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((row, wall, peak))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("csv")
    p.add_argument("--families")
    p.add_argument("--kind", default="auto")
    a = p.parse_args()
    from netscope.data import load_table
    from netscope.multitask.families import families_for

    data = load_table(a.csv, "task", "y", target_kind=a.kind)
    keys = a.families.split(",") if a.families else families_for(data.kind)
    ctx = mp.get_context("spawn")
    print(f"{a.csv}: {len(data.y)} rows, {data.n_tasks} tasks, {data.kind}")
    for key in keys:
        queue = ctx.Queue()
        proc = ctx.Process(target=one, args=(a.csv, key, a.kind, queue))
        proc.start()
        row, wall, peak = queue.get()
        proc.join()
        score = (f"EV {row['explained_variance']:.2%}" if "explained_variance" in row else
                 f"AUC {row.get('auc', float('nan')):.4f}, log loss {row.get('log_loss', 0):.4f}"
                 if "auc" in row else f"deviance {row['poisson_deviance']:.4f}")
        print(f"{row['model']:<45} {score:<32} fit {row['train_seconds']:7.1f} s  "
              f"(wall {wall:6.1f} s)  peak {peak:7.0f} MB", flush=True)


if __name__ == "__main__":
    main()
