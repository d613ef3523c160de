"""netscope's LRP: agreement with Zennit (maps from benchmarks/peer_lrp_zennit.py, same
networks and inputs) and speed against one forward + input-gradient pass, in one process.

    python benchmarks/bench_lrp.py [--zennit /tmp/zennit_lrp.pt] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from netscope.perf import configure
from netscope.vision.methods.gradients import saliency
from netscope.vision.methods.relevance.propagate import lrp
from netscope.vision.models.images import sample_image
from netscope.vision.models.zoo import load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.vision.tiny_lrp import (  # noqa: E402
    TinyResNet,
    TinyVGG,
    eps_into_variance,
    inputs,
)

COMPOSITES = ("epsilon-plus", "epsilon-plus-flat", "epsilon-gamma-box", "epsilon-alpha2-beta1")


def agreement(path: str) -> None:
    peer = torch.load(path, weights_only=True)
    x = inputs().double()
    bounds = {"low": x.amin((0, 2, 3), keepdim=True)[0], "high": x.amax((0, 2, 3), keepdim=True)[0]}
    lm = load_model()
    xl = torch.load(Path(path).with_suffix(".input.pt"), weights_only=True).double()
    lite = eps_into_variance(lm.model.double())
    lite_bounds = {"low": (0 - 0.498) / 0.502, "high": (1 - 0.498) / 0.502}
    print("| network | composite | max abs difference / max abs relevance |")
    print("|---|---|---|")
    vgg, resnet = (eps_into_variance(m().eval().double()) for m in (TinyVGG, TinyResNet))
    for name, model, xx, t, b in (("vgg", vgg, x, [0, 1], bounds),
                                  ("resnet", resnet, x, [0, 1], bounds),
                                  ("lite0", lite, xl, [285], lite_bounds)):
        for comp in COMPOSITES:
            ours = lrp(model, xx, t, composite=comp, **b).attributions
            ref = peer[f"{name}/{comp}"]
            rel = float((ours - ref).abs().max() / ref.abs().max())
            print(f"| {name} | {comp} | {rel:.1e} |")



def timed(fn, rounds: int) -> float:
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed(rounds: int) -> None:
    lm = load_model()
    one = lm.preprocess.tensor(sample_image("chelsea"))
    for batch in (1, 8):
        x = one.expand(batch, -1, -1, -1).contiguous()
        base = timed(lambda x=x: saliency(lm.model, x), rounds)  # forward + input gradient
        for comp in ("epsilon", "epsilon-plus", "epsilon-gamma-box"):
            t = timed(lambda x=x, c=comp: lrp(lm.model, x, composite=c), rounds)
            print(f"batch {batch}: {comp}: {t * 1e3:.0f} ms = {t / base:.2f}x one forward + "
                  f"input-gradient pass ({base * 1e3:.0f} ms)")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--zennit", help="maps written by benchmarks/peer_lrp_zennit.py")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    configure()
    speed(args.rounds)
    if args.zennit:
        agreement(args.zennit)


if __name__ == "__main__":
    main()
