"""Vision speed on the offline EfficientNet-Lite0, everything in one process:
forward pass vs Grad-CAM (batch 1 and 8), batched vs one-by-one filter visualization, and
the arithmetic ceiling on what batching can give on this machine.

    python benchmarks/bench_vision.py [--repeats 20] [--only gradcam|filters|ceiling]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from netscope import vision as A
from netscope.perf import configure
from netscope.vision.core.fastpath import truncated
from netscope.vision.features.ascent import AscentConfig, visualize_filters
from netscope.vision.models.images import SAMPLES, sample_image
from netscope.vision.models.zoo import load_model


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


def matmul_gflops() -> float:
    """This machine's float32 matrix-multiply rate: the most any convolution can reach."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    return 2 * 2048**3 / timed(lambda: a @ b, 10) / 1e9


def batching_ceiling(model, layer: str, size: int, batch: int, peak: float) -> None:
    """Why batching alone cannot give 5x on this CPU: the arithmetic of one ascent step."""
    gm = truncated(model, layer)
    x1 = torch.randn(1, 3, size, size).contiguous(memory_format=torch.channels_last)
    with FlopCounterMode(display=False) as counter:
        gm(x1.clone().requires_grad_(True))[:, 0].mean().backward()  # (grad() trips it)
    gflop = counter.get_total_flops() / 1e9

    def step(n: int) -> float:
        x0 = x1.expand(n, -1, -1, -1).contiguous(memory_format=torch.channels_last)

        def once():
            x = x0.clone().requires_grad_(True)
            torch.autograd.grad(gm(x)[:, 0].mean((1, 2)).sum(), x)
        return timed(once, 5) / n

    t1, tn = step(1), step(batch)
    print(f"  {layer:11s} {gflop:6.3f} GFLOP   batch 1: {t1 * 1e3:6.2f} ms "
          f"({gflop / t1:5.1f} GFLOP/s)   batch {batch}: {tn * 1e3:6.2f} ms "
          f"({gflop / tn:5.1f} GFLOP/s)   batching gives {t1 / tn:4.2f}x; "
          f"at the matmul peak it would give {t1 / (gflop / peak):4.1f}x")


def gradcam_section(model, pre, repeats: int) -> None:
    images = [pre.tensor(sample_image(s)) for s in SAMPLES]
    print(f"EfficientNet-Lite0 at 224x224, {torch.get_num_threads()} threads")
    for n in (1, 8):
        x = torch.cat([images[i % len(images)] for i in range(n)])

        def forward(x=x):
            with torch.no_grad():
                model(x)

        f = timed(forward, repeats)
        g = timed(lambda x=x: A.grad_cam(model, x), repeats)
        print(f"batch {n}: forward {f * 1e3:7.1f} ms   Grad-CAM {g * 1e3:7.1f} ms   "
              f"ratio {g / f:4.2f}")
        others = {m: lambda x=x, m=m: A.grad_cam(model, x, variant=m)
                  for m in ("gradcam++", "xgradcam", "layercam")}
        others["eigencam"] = lambda x=x: A.eigen_cam(model, x)
        print("         " + "   ".join(f"{m} {timed(fn, repeats) / f:4.2f}x"
                                       for m, fn in others.items()) + "  (of the forward pass)")


def filters_section(model, pre, layers: list[str], channels: list[int], rounds: int) -> None:
    cfg = AscentConfig(steps=20, size=128)
    fourier = AscentConfig(steps=20, size=128, param="fourier")
    print(f"{len(channels)} filters, {cfg.steps} steps at {cfg.size}px, medians of "
          f"{rounds} interleaved rounds (seconds; speed-up of batched in brackets):")
    print("  layer        plain loop          netscope 1-by-1     netscope batched   "
          "mean |diff|   batched, Fourier")
    warm = AscentConfig(steps=2, size=cfg.size)
    for layer in layers:
        # oneDNN builds kernels on first use of each shape: warm every path up first
        visualize_filters(model, layer, channels, pre, warm)
        visualize_filters(model, layer, channels[:1], pre, warm)
        plain_filter_loop(model, layer, channels[:1], pre, warm)
        times: dict[str, list[float]] = {"plain": [], "single": [], "batch": [], "fourier": []}
        for _ in range(rounds):  # interleaved rounds, medians: this machine is noisy
            times["plain"].append(plain_filter_loop(model, layer, channels, pre, cfg))
            start = time.perf_counter()
            singles = [visualize_filters(model, layer, [c], pre, cfg) for c in channels]
            times["single"].append(time.perf_counter() - start)
            start = time.perf_counter()
            batched = visualize_filters(model, layer, channels, pre, cfg)
            times["batch"].append(time.perf_counter() - start)
            start = time.perf_counter()
            visualize_filters(model, layer, channels, pre, fourier)
            times["fourier"].append(time.perf_counter() - start)
        t = {k: statistics.median(v) for k, v in times.items()}
        diff = torch.stack([(batched.images[i] - s.images[0]).abs()
                            for i, s in enumerate(singles)])
        print(f"  {layer:11s} {t['plain']:6.2f} ({t['plain'] / t['batch']:4.1f}x)     "
              f"{t['single']:6.2f} ({t['single'] / t['batch']:4.1f}x)     {t['batch']:6.2f}"
              f"            {float(diff.mean()):.1e}       {t['fourier']:6.2f}")
    print("  plain loop: one filter at a time, the whole network every step (the course's way)")


def ceiling_section(model, layers: list[str], batch: int) -> None:
    peak = matmul_gflops()
    print(f"Ceiling: one ascent step per image (forward + input gradient) on netscope's fast "
          f"path, 128px; float32 matmul peak {peak:.0f} GFLOP/s")
    for layer in layers:
        batching_ceiling(model, layer, 128, batch, peak)


def main() -> None:
    print(configure(), flush=True)  # as the netscope command does
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--layers", default="_conv_stem,_blocks.2,_blocks.8,_blocks.15")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["gradcam", "filters", "ceiling"],
                        help="run one section")
    args = parser.parse_args()
    lm = load_model()
    layers, channels = args.layers.split(","), list(range(args.filters))
    if args.only in (None, "gradcam"):
        gradcam_section(lm.model, lm.preprocess, args.repeats)
    if args.only in (None, "filters"):
        filters_section(lm.model, lm.preprocess, layers, channels, args.rounds)
    if args.only in (None, "ceiling"):
        ceiling_section(lm.model, layers, args.filters)


if __name__ == "__main__":
    main()
