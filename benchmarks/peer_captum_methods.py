"""Input x Gradient, Deconvolution and DeepLIFT against Captum on EfficientNet-Lite0, one process:
agreement of the attributions and time per batch as a ratio to one forward pass (batch 1
and 8). Captum is a peer: pip install --target DIR captum tqdm --no-deps, then

    PYTHONPATH=DIR python benchmarks/peer_captum_methods.py

Lite0's activations are nn.ReLU6 modules, which Captum's Deconvolution leaves alone (it
hooks nn.ReLU only), so the deconvolution rows are compared on Lite0 with its ReLU6
modules swapped for nn.ReLU in both (the same model for both libraries).
"""

from __future__ import annotations

import copy

import torch
from captum.attr import Deconvolution, DeepLift, InputXGradient
from peer_timing import lite0_photos, timed  # benchmarks/peer_timing.py
from torch import nn

from netscope.vision.methods.registry import explain


def relu_only(model: nn.Module) -> nn.Module:
    for name, child in model.named_children():
        if isinstance(child, nn.ReLU6):
            setattr(model, name, nn.ReLU())
        else:
            relu_only(child)
    return model


class _ZeroBaseline:
    """Captum's DeepLift with zero baselines (netscope's default), called as the others."""

    def __init__(self, method) -> None:
        self.method = method

    def attribute(self, x, target):
        return self.method.attribute(x, baselines=torch.zeros_like(x), target=target)


def main() -> None:
    import warnings

    warnings.simplefilter("ignore")
    lm, x8 = lite0_photos(8)
    model = lm.model
    print(f"{'method':18} {'batch':>5} {'max |diff|':>11} {'netscope/fwd':>13} "
          f"{'Captum/fwd':>11}")
    deeplift = lambda net: _ZeroBaseline(DeepLift(net))  # noqa: E731
    for name, peer, net in (("input-x-gradient", InputXGradient, model),
                            ("deeplift", deeplift, model),
                            ("deconvolution", Deconvolution, relu_only(copy.deepcopy(model)))):
        for b in (1, 8):
            x = x8[:b]
            with torch.no_grad():
                target = net(x).argmax(1).tolist()
                fwd = timed(lambda: net(x))  # noqa: B023
            ours = explain(name, net, x, target).attributions
            t_ours = timed(lambda: explain(name, net, x, target))  # noqa: B023
            try:
                theirs = peer(net).attribute(x.clone(), target=target)
            except RuntimeError as exc:  # Captum's DeepLift: a module used more than once
                print(f"{name:18} {b:5} {'-':>11} {t_ours / fwd:13.2f}  Captum fails: "
                      f"{str(exc)[:70]}")
                continue
            diff = (ours - theirs).abs().max().item()
            t_peer = timed(lambda: peer(net).attribute(x.clone(), target=target))  # noqa: B023
            print(f"{name:18} {b:5} {diff:11.2e} {t_ours / fwd:13.2f} {t_peer / fwd:11.2f}")


if __name__ == "__main__":
    main()
