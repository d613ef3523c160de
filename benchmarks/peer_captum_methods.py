"""Saliency, Input x Gradient, Deconvolution and DeepLIFT against Captum on
EfficientNet-Lite0, one process: agreement of the attributions and time per batch as a
ratio to one forward pass (batch 1 and 8), beside the floor (a forward pass plus an input
gradient in plain PyTorch); all four timed in turn, medians. Captum is a peer:
pip install --target DIR captum tqdm --no-deps, then

    PYTHONPATH=DIR:src:benchmarks python benchmarks/peer_captum_methods.py

Lite0's activations are nn.ReLU6 modules, which Captum's Deconvolution leaves alone (it
hooks nn.ReLU only), so the deconvolution rows are compared on Lite0 with its ReLU6
modules swapped for nn.ReLU in both (the same model for both libraries).
"""

from __future__ import annotations

import copy

import torch
from bench_gradient_cost import forward_and_gradient
from captum.attr import Deconvolution, DeepLift, InputXGradient, Saliency
from peer_timing import alternating, lite0_photos  # benchmarks/peer_timing.py
from torch import nn

from netscope.vision.methods.registry import explain


def relu_only(model: nn.Module) -> nn.Module:
    for name, child in model.named_children():
        if isinstance(child, nn.ReLU6):
            setattr(model, name, nn.ReLU())
        else:
            relu_only(child)
    return model


def relu_cnn() -> nn.Module:
    """A VGG-like network (8 conv/BN/ReLU layers, 32-256 channels, random weights) whose
    every ReLU is its own module, so Captum's DeepLift rescales all of them too."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    width = 3
    for out in (32, 32, 64, 64, 128, 128, 256, 256):
        stride = 2 if out != width else 1
        layers += [nn.Conv2d(width, out, 3, stride, 1), nn.BatchNorm2d(out), nn.ReLU()]
        width = out
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 1000))
    return net.eval()


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
    print(f"{'method':18} {'batch':>5} {'diff / max':>11} {'netscope/fwd':>13} "
          f"{'Captum/fwd':>11} {'fwd+grad/fwd':>13} {'ratio':>6}")
    deeplift = lambda net: _ZeroBaseline(DeepLift(net))  # noqa: E731
    for name, peer, net in (("saliency", Saliency, model),
                            ("input-x-gradient", InputXGradient, model),
                            ("deeplift", deeplift, model),
                            ("deeplift", deeplift, relu_cnn()),
                            ("deconvolution", Deconvolution, relu_only(copy.deepcopy(model)))):
        for b in (1, 8):
            x = x8[:b]
            with torch.no_grad():
                target = net(x).argmax(1).tolist()
            ours = explain(name, net, x, target).attributions
            try:
                theirs = peer(net).attribute(x.clone(), target=target)
            except RuntimeError as exc:  # Captum's DeepLift: a module used more than once
                print(f"{name:18} {b:5}  Captum fails: {str(exc)[:70]}")
                continue
            diff = (ours - theirs).abs().max().item() / theirs.abs().max().item()
            fwd, floor, t_ours, t_peer = alternating([
                lambda: _forward(net, x),  # noqa: B023
                lambda: forward_and_gradient(net, x, target),  # noqa: B023
                lambda: explain(name, net, x, target),  # noqa: B023
                lambda: peer(net).attribute(x.clone(), target=target)])  # noqa: B023
            print(f"{name:18} {b:5} {diff:11.2e} {t_ours / fwd:13.2f} {t_peer / fwd:11.2f} "
                  f"{floor / fwd:13.2f} {t_ours / t_peer:6.2f}", flush=True)


def _forward(net: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        net(x)


if __name__ == "__main__":
    main()
