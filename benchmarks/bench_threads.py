"""PyTorch threads on an idle and on a busy machine: why netscope's default is the CPUs
that are idle now (``netscope.perf.auto_threads``) and not every core.

Two workloads in this one process: saliency on EfficientNet-Lite0 (one forward and
backward pass at batch 1, convolution-heavy) and 500 Adam steps of the course's pooled MLP
on batches of 32 (many tiny operations). Each runs with 1 thread and with every core, first
on an idle machine, then while another process keeps one core busy (a spinning loop, as a
second job or a browser would). Medians of interleaved rounds.

    python benchmarks/bench_threads.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch

from netscope import vision as A
from netscope.perf import auto_threads, configure, usable_cpus
from netscope.vision.models.images import sample_image
from netscope.vision.models.zoo import load_model


def saliency_seconds(lm, x) -> float:
    start = time.perf_counter()
    A.saliency(lm.model, x)
    return time.perf_counter() - start


def mlp_seconds(steps: int = 500) -> float:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(27, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16),
                              torch.nn.ReLU(), torch.nn.Linear(16, 1))
    opt = torch.optim.Adam(net.parameters())
    X, y = torch.randn(32, 27), torch.randn(32, 1)
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        ((net(X) - y) ** 2).mean().backward()
        opt.step()
    return time.perf_counter() - start


def measure(lm, x, counts: list[int], rounds: int) -> dict[tuple[str, int], float]:
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for n in counts:
            torch.set_num_threads(n)
            saliency_seconds(lm, x)  # warm-up at this thread count
            times.setdefault(("saliency", n), []).append(saliency_seconds(lm, x))
            times.setdefault(("pooled MLP", n), []).append(mlp_seconds())
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(configure(), flush=True)
    cores = usable_cpus()
    counts = sorted({1, cores})
    lm = load_model()
    x = lm.preprocess.tensor(sample_image("chelsea"))
    idle = measure(lm, x, counts, args.rounds)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        chosen = auto_threads()
        busy = measure(lm, x, counts, args.rounds)
    finally:
        spinner.kill()
        spinner.wait()
    print(f"\n| workload | machine | {' | '.join(f'{n} thread(s)' for n in counts)} | "
          f"{cores} vs 1 |")
    print("|---|---|" + "---|" * (len(counts) + 1))
    for work in ("saliency", "pooled MLP"):
        for label, t in (("idle", idle), ("one core busy", busy)):
            cells = " | ".join(f"{t[(work, n)] * 1e3:.0f} ms" for n in counts)
            ratio = t[(work, cores)] / t[(work, 1)]
            print(f"| {work} | {label} | {cells} | {ratio:.2f}x the time |")
    print(f"\nauto_threads() with one core busy chose {chosen} thread(s); on the idle machine "
          f"it chooses {auto_threads()}.")


if __name__ == "__main__":
    main()
