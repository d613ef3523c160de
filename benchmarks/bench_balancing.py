"""What balancing costs per step at the school data's 139 tasks, against the course's sum,
in one process; and the batched Jacobian against one backward pass per task.

1. The shared trunk's third stage (both shared layers trained, every task's 32-row batch at
   the same weights): one step of `sum` (each task's optimizer step, summed) against one
   step of each strategy (the 139 x 1,456 Jacobian from the same hand-written batched pass,
   combined, one shared optimizer step).
2. MMoE with 139 towers and gates: the Jacobian of the tasks' losses with respect to the
   shared parameters by one batched backward (is_grads_batched) against one autograd call
   per task, on a mini-batch of 32 rows (how the expert networks train) and on 32 rows of
   every task at once.

    python benchmarks/bench_balancing.py [--data-dir DIR] [--steps N]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from netscope.data import load_school
from netscope.multitask.balancing import BALANCINGS
from netscope.multitask.balancing.balancer import Balancer
from netscope.multitask.networks.optim import OptimizerSpec, StackedOptimizer
from netscope.multitask.networks.shared_trunk import SHARED, SharedTrunkMTL, _Update
from netscope.multitask.networks.stacked import BatchPlan


def trunk_steps(data, steps: int) -> None:
    X = (data.X - data.X.mean(0)) / np.where(data.X.std(0) > 0, data.X.std(0), 1)
    y = (data.y - data.y.mean()) / data.y.std()
    model = SharedTrunkMTL(stage_epochs=(0, 0, 0), pooled_epochs=1)
    model.tasks_ = np.arange(data.n_tasks)
    model._pooled = None
    model._start(X, y, data.task, data.n_tasks)
    plan = next(iter(BatchPlan(data.task, data.n_tasks, 32, 1, np.random.default_rng(0))))
    mask = plan >= 0
    tasks = np.flatnonzero(mask.any(1))
    idx, m = np.maximum(plan[tasks], 0), mask[tasks].astype(np.float64)
    p = sum(model.trunk_[n].numel() for n in SHARED)
    print(f"shared trunk, stage 3: {len(tasks)} tasks x 32 rows per step, {p} shared numbers")
    base = None
    for key in BALANCINGS:
        b = None if key == "sum" else Balancer(key, data.n_tasks)
        update = _Update(model, X, y, StackedOptimizer(OptimizerSpec("adam", 1e-5),
                                                       data.n_tasks), SHARED, 0, "sum", b)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            update(tasks, idx, m)  # first call builds solvers and state
            start = time.perf_counter()
            for _ in range(steps):
                update(tasks, idx, m)
            per = (time.perf_counter() - start) / steps
        base = base or per
        print(f"  {key:12} {1000 * per:9.2f} ms per step  {per / base:8.1f} x sum")


def mmoe_jacobian(n_tasks: int = 139, rows: int = 32, reps: int = 5) -> None:
    from netscope.multitask.networks.experts import MMoE, own_parameters
    from netscope.multitask.networks.joint import task_jacobian, task_means

    torch.manual_seed(0)
    net = MMoE(28, n_tasks, 1, widths=(32, 16), tower=8, experts=4)
    x = torch.randn(rows, 28, dtype=torch.float64)
    t = torch.randint(0, n_tasks, (rows,), generator=torch.Generator().manual_seed(1))
    y = torch.randn(rows, dtype=torch.float64)
    shared = [p for p, o in zip(net.parameters(), own_parameters(net), strict=True) if not o]

    def losses():
        return task_means((net(x, t)[:, 0] - y) ** 2, t)[0]

    k = len(losses())
    start = time.perf_counter()
    for _ in range(reps):
        batched = torch.cat([g.reshape(k, -1) for g in task_jacobian(losses(), shared)], 1)
    one = (time.perf_counter() - start) / reps
    start = time.perf_counter()
    for _ in range(reps):
        L = losses()
        rows = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(
            L[i], shared, retain_graph=True)]) for i in range(k)]
    loop = (time.perf_counter() - start) / reps
    err = (batched - torch.stack(rows)).abs().max().item()
    print(f"MMoE, {n_tasks} towers, a batch of {rows} rows holding {k} tasks, "
          f"{batched.shape[1]} shared numbers: batched Jacobian {1000 * one:.1f} ms, {k} "
          f"backward passes {1000 * loop:.1f} ms ({loop / one:.1f}x); largest difference "
          f"{err:.1e}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    trunk_steps(load_school(args.data_dir), args.steps)
    mmoe_jacobian(rows=32, reps=50)  # the expert networks' mini-batch of rows
    mmoe_jacobian(rows=32 * 139)  # every task's 32 rows at once
