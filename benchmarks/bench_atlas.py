"""The unit atlas's costs on EfficientNet-Lite0, in one process where ratios are asked.

    python benchmarks/bench_atlas.py pass      # recording vs plain forward passes, one layer
    python benchmarks/bench_atlas.py stats N   # two layers' statistics over N images
    python benchmarks/bench_atlas.py memory N  # peak resident memory after N images
    python benchmarks/bench_atlas.py pictures  # batched feature visualizations, units/s

Images are random crops of the bundled photos made in memory, so decoding is not timed
(the DataLoader's workers overlap it in a real run).
"""

from __future__ import annotations

import resource
import statistics
import sys
import time

import numpy as np
import torch

from netscope.perf import configure
from netscope.vision.core.capture import LayerRef
from netscope.vision.models.zoo import load_model
from netscope.vision.units.atlas_run import high_count, probe_layers, record_batch
from netscope.vision.units.demo import photos
from netscope.vision.units.store import PassState
from netscope.vision.units.streaming import UnitState

LAYERS = ("_blocks.5", "_blocks.10")
BATCH = 16


def batches(lm, n: int):
    rng = np.random.default_rng(0)
    pool = [lm.preprocess.tensor(p[..., :3].astype(np.float32) / 255)[0] for p in
            photos().values()]
    for start in range(0, n, BATCH):
        b = min(BATCH, n - start)
        xs = torch.stack([torch.roll(pool[rng.integers(len(pool))], int(rng.integers(-40, 40)),
                                     dims=2) for _ in range(b)])
        yield np.arange(start, start + b), xs


def fresh(lm, layers, n):
    layouts, units = probe_layers(lm, layers)
    state = PassState({name: UnitState(9, high_count(n, 9), units[name]) for name in layers})
    return layouts, state


def bench_pass(lm, rounds: int = 5) -> None:
    data = list(batches(lm, BATCH * 4))
    for layer in ("_blocks.5", "_blocks.15"):
        layouts, state = fresh(lm, (layer,), 64)
        refs = {layer: LayerRef.parse(layer)}
        plain, rec = [], []
        for _ in range(rounds):
            t = time.perf_counter()
            with torch.no_grad():
                for _, x in data:
                    lm.model(x)
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            for ids, x in data:
                record_batch(lm, x, ids, refs, layouts, state)
            rec.append(time.perf_counter() - t)
        p, r = statistics.median(plain), statistics.median(rec)
        print(f"{layer}: plain forward {p / 64 * 1000:.1f} ms/image, recording "
              f"{r / 64 * 1000:.1f} ms/image, ratio {r / p:.2f}x (batch {BATCH})")


def bench_stats(lm, n: int) -> None:
    layouts, state = fresh(lm, LAYERS, n)
    refs = {name: LayerRef.parse(name) for name in LAYERS}
    t = time.perf_counter()
    for ids, x in batches(lm, n):
        record_batch(lm, x, ids, refs, layouts, state)
    seconds = time.perf_counter() - t
    units = sum(s.units for s in state.layers.values())
    t = time.perf_counter()
    for s in state.layers.values():
        s.statistics(), s.correlation()
    print(f"{n} images, layers {', '.join(LAYERS)} ({units} units): pass {seconds:.1f} s "
          f"({n / seconds:.1f} images/s), statistics + correlations "
          f"{time.perf_counter() - t:.2f} s")


def bench_memory(lm, n: int) -> None:
    layouts, state = fresh(lm, LAYERS, n)
    refs = {name: LayerRef.parse(name) for name in LAYERS}
    for ids, x in batches(lm, n):
        record_batch(lm, x, ids, refs, layouts, state)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{n} images: peak resident memory {peak:.0f} MiB")


def bench_pictures(lm) -> None:
    from netscope.vision.units.pictures import picture_config, unit_pictures

    for layer, units in (("_blocks.2", 24), ("_blocks.5", 32)):
        cfg = picture_config("fourier", 48)
        t = time.perf_counter()
        unit_pictures(lm, layer, units, cfg)
        seconds = time.perf_counter() - t
        print(f"{layer}: {units} units x 48 steps at 128 px in {seconds:.1f} s, "
              f"{units / seconds:.2f} units/s")


if __name__ == "__main__":
    configure()
    lm = load_model()
    what = sys.argv[1] if len(sys.argv) > 1 else "pass"
    if what == "pass":
        bench_pass(lm)
    elif what == "stats":
        bench_stats(lm, int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
    elif what == "memory":
        bench_memory(lm, int(sys.argv[2]) if len(sys.argv) > 2 else 200)
    else:
        bench_pictures(lm)
