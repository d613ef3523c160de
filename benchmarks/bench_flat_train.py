"""Tiny networks: PyTorch's way (autograd + fused torch.optim.Adam, one module call per
batch) vs netscope's NumPy trainer on a flat parameter vector, same initial weights and the
same shuffled batches, in one process. Prints the ratio and the largest weight difference.

    python benchmarks/bench_flat_train.py [--data-dir ../shared/data] [--epochs 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from netscope.data import load_school
from netscope.multitask import protocols
from netscope.multitask.networks.flat_train import FlatParams, train_flat
from netscope.multitask.networks.gated import GatedNet, gated_gradient
from netscope.multitask.networks.optim import OptimizerSpec
from netscope.multitask.networks.pooled import mlp, mlp_gradient
from netscope.perf import configure


def torch_loop(net, forward, X, t, y, spec, epochs, batch_size, seed) -> float:
    """What the pooled and gated networks did before: autograd, fused Adam, batch by batch."""
    X, t, y = torch.from_numpy(X), torch.from_numpy(t), torch.from_numpy(y)
    opt = spec.torch(list(net.parameters()), fused=True)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(X.shape[0]))
        for s in range(0, X.shape[0], batch_size):
            rows = order[s:s + batch_size]
            opt.zero_grad(set_to_none=True)
            ((forward(X[rows], t[rows]) - y[rows]) ** 2).mean().backward()
            opt.step()
    return time.perf_counter() - start


def bench(name, build, forward, gradient, X, t, y, epochs) -> None:
    spec = OptimizerSpec("adam", 1e-3)
    ref = build()
    t_torch = torch_loop(ref, lambda xb, tb: forward(ref, xb, tb), X, t, y, spec, epochs, 32, 0)
    net = build()
    flat = FlatParams.adopt(list(net.parameters()))
    start = time.perf_counter()
    train_flat(gradient(flat), flat, X.shape[0], spec, epochs, 32, 0, name)
    t_flat = time.perf_counter() - start
    with torch.no_grad():
        diff = max(float((a - b).abs().max()) for a, b in zip(net.parameters(),
                                                              ref.parameters(), strict=True))
    steps = epochs * -(-X.shape[0] // 32)
    print(f"{name}: {steps} steps of 32 rows")
    for label, secs in (("torch autograd + fused Adam", t_torch), ("netscope flat NumPy", t_flat)):
        print(f"  {label:27s} : {secs:7.3f} s ({1e6 * secs / steps:5.0f} us/step)")
    print(f"  speed-up                    : {t_torch / t_flat:7.1f}x   "
          f"(max weight difference {diff:.1e})")


def main() -> None:
    print(configure(), flush=True)  # as the netscope command does
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    data = load_school(args.data_dir)
    proto = protocols.standard(data, args.data_dir)
    prep = protocols.prepare(data, proto.splits[0], proto.scale_from)
    X, y, t = prep.X_train, prep.y_train, prep.t_train
    d, T = X.shape[1], data.n_tasks
    bench("pooled MLP 32-16-1", lambda: mlp([d, 32, 16, 1], 0),
          lambda net, xb, tb: net(xb).squeeze(-1),
          lambda flat: mlp_gradient(flat, X, y), X, t, y, args.epochs)
    bench("task-gated 32/16", lambda: GatedNet(d, T, 32, 16, 0),
          lambda net, xb, tb: net(xb, tb),
          lambda flat: gated_gradient(flat, X, t, y), X, t, y, args.epochs)


if __name__ == "__main__":
    main()
