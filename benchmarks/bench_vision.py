"""Vision speed on the offline EfficientNet-Lite0, everything in one process:
forward pass vs Grad-CAM (batch 1 and 8), and batched vs one-by-one filter visualization.

    python benchmarks/bench_vision.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from netscope.perf import tune_malloc
from netscope.vision import attribution as A
from netscope.vision.ascent import AscentConfig, visualize_filters
from netscope.vision.images import SAMPLES, sample_image
from netscope.vision.models import load_model


def timed(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_filter_loop(model, layer: str, channels, pre, cfg: AscentConfig) -> float:
    """The course's way: one filter at a time, the full network every step, a forward hook
    for the layer, normalized-gradient ascent. Returns seconds."""
    module = dict(model.named_modules())[layer]
    start = time.perf_counter()
    for p in model.parameters():
        p.requires_grad_(False)
    store: dict[str, torch.Tensor] = {}
    handle = module.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    for c in channels:
        gen = torch.Generator().manual_seed(c)
        x = pre.normalize((0.5 + 0.1 * torch.randn(1, 3, cfg.size, cfg.size, generator=gen))
                          .clamp(0, 1))
        for _ in range(cfg.steps):
            x = x.detach().requires_grad_(True)
            model(x)
            (g,) = torch.autograd.grad(store["a"][0, c].mean(), x)
            x = x + cfg.lr * g / (g.pow(2).mean().sqrt() + 1e-8)
    handle.remove()
    for p in model.parameters():
        p.requires_grad_(True)
    return time.perf_counter() - start


def main() -> None:
    tune_malloc()  # as the netscope command does
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--layers", default="_conv_stem,_blocks.2,_blocks.8,_blocks.15")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    lm = load_model()
    model, pre = lm.model, lm.preprocess
    images = [pre.tensor(sample_image(s)) for s in SAMPLES]
    print(f"EfficientNet-Lite0 at 224x224, {torch.get_num_threads()} threads")
    for n in (1, 8):
        x = torch.cat([images[i % len(images)] for i in range(n)])

        def forward(x=x):
            with torch.no_grad():
                model(x)

        f = timed(forward, args.repeats)
        g = timed(lambda x=x: A.grad_cam(model, x), args.repeats)
        print(f"batch {n}: forward {f * 1e3:7.1f} ms   Grad-CAM {g * 1e3:7.1f} ms   "
              f"ratio {g / f:4.2f}")
    cfg = AscentConfig(steps=20, size=128)
    channels = list(range(args.filters))
    print(f"{args.filters} filters, {cfg.steps} steps at {cfg.size}px, medians of "
          f"{args.rounds} interleaved rounds (seconds; speed-up of batched in brackets):")
    print("  layer        plain loop          netscope 1-by-1     netscope batched   "
          "mean |diff|")
    warm = AscentConfig(steps=2, size=cfg.size)
    for layer in args.layers.split(","):
        # oneDNN builds kernels on first use of each shape: warm every path up first
        visualize_filters(model, layer, channels, pre, warm)
        visualize_filters(model, layer, channels[:1], pre, warm)
        plain_filter_loop(model, layer, channels[:1], pre, warm)
        times: dict[str, list[float]] = {"plain": [], "single": [], "batch": []}
        for _ in range(args.rounds):  # interleaved rounds, medians: this machine is noisy
            times["plain"].append(plain_filter_loop(model, layer, channels, pre, cfg))
            start = time.perf_counter()
            singles = [visualize_filters(model, layer, [c], pre, cfg) for c in channels]
            times["single"].append(time.perf_counter() - start)
            start = time.perf_counter()
            batched = visualize_filters(model, layer, channels, pre, cfg)
            times["batch"].append(time.perf_counter() - start)
        t_plain, t_single, t_batch = (statistics.median(times[k])
                                      for k in ("plain", "single", "batch"))
        diff = torch.stack([(batched.images[i] - s.images[0]).abs()
                            for i, s in enumerate(singles)])
        print(f"  {layer:11s} {t_plain:6.2f} ({t_plain / t_batch:4.1f}x)     "
              f"{t_single:6.2f} ({t_single / t_batch:4.1f}x)     {t_batch:6.2f}            "
              f"{float(diff.mean()):.1e}")
    print("  plain loop: one filter at a time, the whole network every step (the course's way)")

if __name__ == "__main__":
    main()
