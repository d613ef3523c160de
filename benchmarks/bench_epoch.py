"""Seconds per tuned epoch of the task-gated network (one setting, 3 epochs) on
grouped_data.py files, to see how an epoch's cost grows with the rows and tasks:

    python benchmarks/bench_epoch.py /tmp/g/regression-2000x100.csv /tmp/g/regression-10000x100.csv
"""

from __future__ import annotations

import sys
import time

from netscope.data import load_table
from netscope.multitask import protocols
from netscope.multitask.networks.gated import TaskGatedMLP
from netscope.multitask.protocols import prepare


def main() -> None:
    for path in sys.argv[1:]:
        data = load_table(path, "task", "y")
        prep = prepare(data, protocols.lecture(data).splits[0], "all")
        model = TaskGatedMLP(tune=True, max_epochs=3, patience=100)
        model.grid = {"lr": (1,)}  # one setting: the epochs alone are timed
        model.decay_alternative = None
        start = time.perf_counter()
        model.fit(prep.X_train, prep.y_train, prep.t_train)
        seconds = time.perf_counter() - start
        print(f"{path}: {len(prep.y_train)} training rows, {data.n_tasks} tasks: "
              f"{seconds / 3:.2f} s per tuned epoch", flush=True)


if __name__ == "__main__":
    main()
