"""netscope's concept relevance (LRP with ``through={layer: [k]}``) against zennit-crp 0.6's
``CondAttribution`` on the same VGG-style network, rule (EpsilonPlus) and conditions: the
conditional heat map of class c through channel k of a layer. `pip install --no-deps
--target /tmp/zen/lib zennit zennit-crp` (it also needs tqdm on the path; zennit's
torchvision import is stubbed), then `PYTHONPATH=/tmp/zen/lib:/tmp/oc/lib python
benchmarks/peer_crp.py`.
"""

from __future__ import annotations

import torch
from torch import nn


def vgg() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(12, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 10)).eval()


def _stub_torchvision() -> None:
    """zennit imports torchvision's ResNet blocks for its canonizers; none is used here."""
    import sys
    import types

    names = ("torchvision", "torchvision.models", "torchvision.models.resnet")
    for name in names:
        sys.modules.setdefault(name, types.ModuleType(name))
    resnet = sys.modules["torchvision.models.resnet"]
    resnet.Bottleneck = type("Bottleneck", (nn.Module,), {})
    resnet.BasicBlock = type("BasicBlock", (nn.Module,), {})
    sys.modules["torchvision"].models = sys.modules["torchvision.models"]
    sys.modules["torchvision.models"].resnet = resnet


def main() -> None:
    _stub_torchvision()
    from crp.attribution import CondAttribution
    from zennit.composites import EpsilonPlus

    from netscope.vision.methods.relevance.propagate import lrp

    model = vgg()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    worst = 0.0
    for layer, channel, target in (("2", 3, 4), ("5", 7, 1), ("5", 0, 9)):
        attribution = CondAttribution(model)
        conditions = [{"y": [target], layer: [channel]}]
        theirs = attribution(x.clone().requires_grad_(True), conditions, EpsilonPlus()).heatmap
        ours = lrp(model, x, [target] * len(x), composite="epsilon-plus", epsilon=1e-6,
                   through={layer: [channel]}).attributions.sum(1)
        diff = float((ours - theirs).abs().max() / theirs.abs().max().clamp_min(1e-30))
        worst = max(worst, diff)
        print(f"layer {layer}, channel {channel}, class {target}: largest difference "
              f"{diff:.1e} of the largest relevance (total {float(theirs.sum()):.4g} / "
              f"{float(ours.sum()):.4g})")
    print(f"worst {worst:.1e}")


if __name__ == "__main__":
    main()
