"""What a single-pass gradient method costs over the work it cannot avoid: one forward pass
and one input gradient of the same batch in plain PyTorch (issue 30's target: within 1.3x).
EfficientNet-Lite0, sample photos, each image's top class; the baseline and each method are
timed alternately, ``--rounds`` times, and the ratio is of the medians (this machine's
timings drift by tens of percent between runs, much less between neighbouring calls).

    PYTHONPATH=src:benchmarks python benchmarks/bench_gradient_cost.py [--batches 1 8]

DeepLIFT runs the image and its baseline in one batch of 2N, so it is also shown against a
forward plus gradient of 2N rows.
"""

from __future__ import annotations

import argparse
import warnings

import torch
from peer_timing import alternating, lite0_photos  # benchmarks/peer_timing.py

from netscope.vision.methods.registry import explain

LAYER = "_blocks.15"  # the CAM methods' layer (Lite0's last block)
METHODS = {"saliency": {}, "input-x-gradient": {}, "deconvolution": {}, "deeplift": {},
           "fullgrad": {}, "gradcam": {"layer": LAYER}, "gradcam++": {"layer": LAYER},
           "xgradcam": {"layer": LAYER}, "layercam": {"layer": LAYER},
           "gradcam-elementwise": {"layer": LAYER}, "eigengradcam": {"layer": LAYER},
           "guided": {"layer": LAYER}}


def forward_and_gradient(model: torch.nn.Module, x: torch.Tensor, target: list[int]) -> None:
    """The floor: one forward and d(target scores)/d(input), nothing else."""
    xi = x.detach().clone().requires_grad_(True)
    out = model(xi)
    torch.autograd.grad(out[torch.arange(len(x)), target].sum(), xi)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--only", nargs="+", default=list(METHODS))
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    lm, x8 = lite0_photos(max(args.batches))
    model = lm.model
    print(f"{'method':20} {'batch':>5} {'fwd+grad s':>11} {'method s':>9} {'ratio':>6}")
    for b in args.batches:
        x = x8[:b]
        with torch.no_grad():
            target = model(x).argmax(1).tolist()
        for name in args.only:
            base = lambda: forward_and_gradient(model, x, target)  # noqa: B023, E731
            run = lambda: explain(name, model, x, target, **METHODS[name])  # noqa: B023, E731
            tb, tm = alternating([base, run], args.rounds)
            print(f"{name:20} {b:5} {tb:11.4f} {tm:9.4f} {tm / tb:6.2f}", flush=True)
            if name == "deeplift":
                x2, t2 = torch.cat([x, x]), target * 2
                tb2, tm2 = alternating([lambda: forward_and_gradient(model, x2, t2),  # noqa: B023
                                        run], args.rounds)
                print(f"{'  (vs 2N rows)':20} {b:5} {tb2:11.4f} {tm2:9.4f} {tm2 / tb2:6.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
