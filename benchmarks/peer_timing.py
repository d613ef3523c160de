"""What the peer benchmarks share: a timer and a batch of sample photos for
EfficientNet-Lite0, so every comparison times and feeds both libraries alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from netscope.vision.models.images import SAMPLES, load_image
from netscope.vision.models.zoo import LoadedModel, load_model


def timed(fn: Callable[[], object], reps: int = 3) -> float:
    """Seconds per call, after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def alternating(fns: list[Callable[[], object]], rounds: int = 7) -> list[float]:
    """Median seconds per call of each of ``fns``, called in turn ``rounds`` times after a
    warm-up (this machine drifts by tens of percent between runs, much less between
    neighbouring calls, so ratios of these medians are steadier than separate timings)."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, ts in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - start)
    return [statistics.median(ts) for ts in times]


def lite0_photos(n: int = 8) -> tuple[LoadedModel, torch.Tensor]:
    """EfficientNet-Lite0 in evaluation mode and ``n`` sample photos (cycling through
    the four), preprocessed."""
    lm = load_model("efficientnet-lite0")
    lm.model.eval()
    names = list(SAMPLES)
    return lm, torch.cat([lm.preprocess.tensor(load_image(names[i % len(names)]))
                          for i in range(n)])
