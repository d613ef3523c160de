"""Per-task MLPs: a plain per-task Python loop (the course's way) vs netscope's batched
trainer, same initial weights and same mini-batches, in one process. Prints the ratio.

    python benchmarks/bench_pertask.py [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from netscope.data import load_school, load_survey
from netscope.multitask import protocols
from netscope.multitask.networks.optim import OptimizerSpec
from netscope.multitask.networks.pertask import train_stacked
from netscope.multitask.networks.stacked import batch_plan, init_stacked_mlp
from netscope.perf import configure

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.multitask.reference import train_per_task_loop  # noqa: E402


def bench(name: str, data, epochs: int) -> None:
    proto = protocols.lecture(data)
    prep = protocols.prepare(data, proto.splits[0], proto.scale_from)
    X, y = torch.from_numpy(prep.X_train), torch.from_numpy(prep.y_train)
    init = init_stacked_mlp(data.n_tasks, [X.shape[1], 30, 15, 1], seed=0)
    plan = batch_plan(prep.t_train, data.n_tasks, 32, epochs, np.random.default_rng(0))
    spec = OptimizerSpec("rmsprop", 1e-3)
    start = time.perf_counter()
    looped = train_per_task_loop(init, X, y, plan, spec)
    t_loop = time.perf_counter() - start
    start = time.perf_counter()
    batched = train_stacked(init, X, y, plan, spec)
    t_batched = time.perf_counter() - start
    diff = max(float((looped[k] - batched[k]).abs().max()) for k in init)
    print(f"{name}: {data.n_tasks} tasks, Dense 30-15-1, RMSprop, {epochs} epochs, batch 32")
    print(f"  per-task Python loop : {t_loop:8.3f} s")
    print(f"  netscope batched     : {t_batched:8.3f} s")
    print(f"  speed-up             : {t_loop / t_batched:8.1f}x"
          f"   (max weight difference {diff:.1e})")


def main() -> None:
    print(configure(), flush=True)  # as the netscope command does
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    bench("school", load_school(args.data_dir), args.epochs)
    bench("survey", load_survey(args.data_dir), args.epochs * 20)


if __name__ == "__main__":
    main()
