"""The evaluation metrics that Quantus 0.6 (and Captum) have, against netscope's, in one
process on EfficientNet-Lite0: agreement on the same maps, masks and perturbations, and
time per call (netscope / peer). Quantus and Captum are peers:

    pip install --target DIR quantus==0.6.0 --no-deps
    pip install --target DIR tqdm cachetools opencv-python-headless captum --no-deps
    PYTHONPATH=DIR python benchmarks/peer_quantus_metrics.py [--images 8] [--samples 10]

Maps: Grad-CAM of each image's top-1 class, upsampled to the input and scaled to a maximum
of 1 (as `vision evaluate` scores them); masks: the central half of each image; the
robustness metrics recompute saliency maps, both libraries through the same function.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import quantus
import torch
from captum import metrics as captum_metrics

from netscope.vision.core.targets import resolve
from netscope.vision.evaluation import EvalSettings, explainer
from netscope.vision.metrics.complexity import complexity_scores
from netscope.vision.metrics.faithfulness import input_maps
from netscope.vision.metrics.infidelity import infidelity
from netscope.vision.metrics.localisation import localisation_scores
from netscope.vision.metrics.robustness import (
    local_lipschitz_scores,
    max_sensitivity_scores,
    noise,
)
from netscope.vision.metrics.scored import MetricInput
from netscope.vision.models.images import SAMPLES, load_image
from netscope.vision.models.zoo import load_model


def timed(fn, reps: int = 3):
    out = fn()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return out, (time.perf_counter() - start) / reps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    lm = load_model()
    model = lm.model.eval()
    names = list(SAMPLES) * (args.images // len(SAMPLES) + 1)
    x = torch.cat([lm.preprocess.tensor(load_image(n)) for n in names[: args.images]])
    with torch.no_grad():
        t = resolve(model(x), None)
    cam = explainer("gradcam", EvalSettings())
    maps = input_maps(cam(model, x, t), x)
    n, size = x.shape[0], x.shape[-1]
    masks = torch.zeros(n, size, size)
    masks[:, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1
    inp = MetricInput(model, x, maps, t, lm.preprocess, None, masks, 16, 0)
    a_np, s_np, x_np, y_np = maps[:, None].numpy(), masks[:, None].numpy(), x.numpy(), \
        t.labels.numpy()
    print(f"EfficientNet-Lite0, {n} images, {size} px, Grad-CAM maps; netscope / peer time")
    rows = []

    for family, fn, peers in (
            ("localisation", localisation_scores,
             (("pointing_game", quantus.PointingGame),
              ("relevance_mass", quantus.RelevanceMassAccuracy),
              ("relevance_rank", quantus.RelevanceRankAccuracy),
              ("localisation_auc", quantus.AUC))),
            ("complexity", complexity_scores,
             (("sparseness", quantus.Sparseness), ("complexity", quantus.Complexity)))):
        ours, ours_s = timed(lambda fn=fn: fn(inp).values)
        gaps, peer_total = [], 0.0
        for col, peer in peers:
            metric = peer(disable_warnings=True)
            ref, peer_s = timed(lambda metric=metric: metric(
                model=model, x_batch=x_np, y_batch=y_np, a_batch=a_np.copy(), s_batch=s_np,
                device="cpu"))
            peer_total += peer_s
            ref = np.asarray(ref, float)
            gaps.append(float(np.abs(ours[col].numpy() - ref).max()
                              / max(1.0, float(np.abs(ref).max()))))
            print(f"  {col}: max relative difference {gaps[-1]:.1e}")
        rows.append((f"{family} ({len(peers)} metrics)", max(gaps), ours_s, peer_total))

    saliency = explainer("saliency", EvalSettings())
    inp.explain = saliency

    def explain_np(model, inputs, targets, **kwargs):
        xs = torch.as_tensor(inputs)
        return input_maps(saliency(model, xs, resolve(model(xs), list(targets))), xs)[:, None] \
            .detach().numpy()

    for col, kind, size_, peer, fn in (
            ("max_sensitivity", "uniform", 0.02, quantus.MaxSensitivity,
             lambda: max_sensitivity_scores(inp, sensitivity_samples=args.samples,
                                            sensitivity_radius=0.02)),
            ("local_lipschitz", "gaussian", 0.1, quantus.LocalLipschitzEstimate,
             lambda: local_lipschitz_scores(inp, lipschitz_samples=args.samples,
                                            lipschitz_sd=0.1))):
        got, ours_s = timed(lambda fn=fn, col=col: fn().values[col], reps=1)

        def run(kind=kind, size_=size_, peer=peer):
            draws = iter(noise(x, args.samples, kind, size_, 0).numpy())

            def perturb(arr, indices=None, draws=draws, **kwargs):
                return arr + next(draws).reshape(arr.shape)
            return peer(nr_samples=args.samples, perturb_func=perturb, disable_warnings=True,
                        normalise=False)(model=model, x_batch=x_np, y_batch=y_np,
                                         a_batch=a_np.copy(), explain_func=explain_np,
                                         device="cpu")
        inp.maps = maps  # both score the Grad-CAM maps against recomputed saliency maps
        ref, peer_s = timed(run, reps=1)
        rows.append((col, float(np.abs(got.numpy() - np.asarray(ref, float)).max()
                                / max(1e-12, float(np.abs(np.asarray(ref)).max()))),
                     ours_s, peer_s))

    draws = noise(x, args.samples, "gaussian", 0.1, 0)
    got, ours_s = timed(lambda: infidelity(inp, draws))
    per_row = draws.transpose(0, 1).flatten(0, 1)
    ref, peer_s = timed(lambda: captum_metrics.infidelity(
        model, lambda inputs: (per_row, inputs - per_row), x, maps[:, None].expand_as(x),
        target=t.labels, n_perturb_samples=args.samples, normalize=True))
    rows.append(("infidelity (Captum)", float((got - ref.double()).abs().max()
                                               / ref.abs().max()), ours_s, peer_s))
    print(f"{'metric':24s} {'max diff':>10s} {'netscope s':>11s} {'peer s':>9s} {'ratio':>7s}")
    for name, gap, ours_s, peer_s in rows:
        print(f"{name:24s} {gap:10.1e} {ours_s:11.4f} {peer_s:9.4f} {ours_s / peer_s:7.2f}")


if __name__ == "__main__":
    main()
