"""Speed of the faithfulness metrics and the perturbation methods on EfficientNet-Lite0, each
against its own floor or the way peers run it, in this one process (medians of rounds):

- deletion + insertion, 50 steps, one image: netscope's batched metric vs (a) the 102
  forward passes it needs, run as batches of 16 prepared images on the same simplified
  trace (the floor), and (b) the same metric one image per step through the model (the
  form peers' code takes); and the ceiling: batch-1 forward passes vs batched ones;
- Score-CAM at Lite0's pooled feature map: all 1280 channels and the top 128, as multiples
  of one forward pass;
- Integrated Gradients with 32 steps vs 32 forward+backward passes at batch 1.

    python benchmarks/bench_faithfulness.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from netscope import vision as A
from netscope.perf import configure
from netscope.vision.core.baselines import baseline_like
from netscope.vision.core.fastpath import truncated
from netscope.vision.core.targets import resolve
from netscope.vision.methods.forward_cams import score_cam
from netscope.vision.methods.gradients import input_grad
from netscope.vision.methods.path_integral import integrated_gradients
from netscope.vision.metrics.faithfulness import deletion, insertion, pixel_ranks
from netscope.vision.models.images import sample_image
from netscope.vision.models.zoo import load_model

STEPS = 50


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def per_step_metric(model, x, maps, t) -> None:
    """Deletion and insertion as a loop: build one image, run the model, next step."""
    ranks = pixel_ranks(torch.nn.functional.interpolate(
        maps[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0])[0]
    base = baseline_like(x, "blur")
    pixels = ranks.numel()
    with torch.no_grad():
        for first, second in ((base, x), (x, base)):
            for i in range(STEPS + 1):
                k = round(i * pixels / STEPS)
                mask = (ranks < k).view(1, 1, *x.shape[-2:])
                model(torch.where(mask, first, second)).softmax(1)[0, t]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(configure(), flush=True)
    lm = load_model()
    model = lm.model.eval()
    x = lm.preprocess.tensor(sample_image("chelsea"))
    heat = A.grad_cam(model, x)
    t = int(heat.classes[0])
    batch = torch.cat([x] * 16).contiguous(memory_format=torch.channels_last)
    fast = truncated(model, None)  # what the metric runs on
    rows: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        rows.setdefault("deletion + insertion (netscope, batched)", []).append(timed(
            lambda: (deletion(model, x, heat, t, STEPS), insertion(model, x, heat, t, STEPS))))

        def floor() -> None:
            with torch.no_grad():
                for _ in range(-(-2 * (STEPS + 1) // 16)):
                    fast(batch)
        rows.setdefault("102 forward passes as batches of 16 (floor)", []).append(timed(floor))
        rows.setdefault("deletion + insertion, one image per step", []).append(
            timed(lambda: per_step_metric(model, x, heat.maps, t)))

        def forward() -> None:
            with torch.no_grad():
                model(x)
        rows.setdefault("one forward pass", []).append(timed(forward))
        rows.setdefault("Score-CAM, all 1280 channels", []).append(
            timed(lambda: score_cam(model, x, targets=t)))
        rows.setdefault("Score-CAM, top 128 channels", []).append(
            timed(lambda: score_cam(model, x, targets=t, top_k=128)))
        rows.setdefault("Integrated Gradients, 32 steps", []).append(
            timed(lambda: integrated_gradients(model, x, t, steps=32)))

        target = resolve(heat.logits, [t])

        def fwd_bwd(target=target) -> None:
            for _ in range(32):
                input_grad(model, x, target)
        rows.setdefault("32 forward+backward passes at batch 1", []).append(timed(fwd_bwd))
    med = {k: statistics.median(v) for k, v in rows.items()}
    print("\n| what | seconds |\n|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v:.3f} |")
    metric = med["deletion + insertion (netscope, batched)"]
    print(f"\ndeletion+insertion vs its 102 forward passes in batches: "
          f"{metric / med['102 forward passes as batches of 16 (floor)']:.2f}x the time "
          f"(target: within 2x)")
    print(f"one-image-per-step form vs netscope: "
          f"{med['deletion + insertion, one image per step'] / metric:.1f}x slower "
          f"(target: netscope >= 4x faster)")
    ceiling = 2 * (STEPS + 1) * med["one forward pass"] / med[
        "102 forward passes as batches of 16 (floor)"]
    print(f"ceiling on this machine: 102 forward passes at batch 1 take {ceiling:.1f}x the "
          f"time of the same passes in batches of 16, so no batched metric can be more than "
          f"about {ceiling:.1f}x faster than the one-image-per-step form here")
    fwd = med["one forward pass"]
    for k in ("Score-CAM, all 1280 channels", "Score-CAM, top 128 channels"):
        print(f"{k}: {med[k]:.2f} s = {med[k] / fwd:.0f} forward passes")
    ig = med["Integrated Gradients, 32 steps"] / med["32 forward+backward passes at batch 1"]
    print(f"Integrated Gradients (32 steps) vs 32 forward+backward passes at batch 1: "
          f"{ig:.2f}x the time")


if __name__ == "__main__":
    main()
