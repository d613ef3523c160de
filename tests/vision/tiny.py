"""Tiny deterministic CNNs with traps: in-place ReLUs, a module reused twice, a GAP head."""

from __future__ import annotations

import torch
from torch import nn


class TinyGAP(nn.Module):
    """conv -> ReLU(inplace) -> conv -> ReLU(inplace) -> global average pool -> linear."""

    def __init__(self, seed: int = 0, dtype=torch.float64) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(5, 3)
        self.to(dtype)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


class Reused(nn.Module):
    """One activation module called twice in a forward pass."""

    def __init__(self, dtype=torch.float64) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 2)
        self.to(dtype)

    def forward(self, x):
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.fc(self.pool(x).flatten(1))


def image(n: int = 1, size: int = 8, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed),
                       dtype=dtype)


def tiny_gap32() -> nn.Module:
    """A model factory for command-line tests (``--model tests.vision.tiny:tiny_gap32``):
    TinyGAP in float32 on 16x16 inputs."""
    model = TinyGAP(dtype=torch.float32)
    model.image_size = 16
    return model.eval()


class DictOutput(nn.Module):
    """A classifier that returns {"logits": ..., "features": ...}, as many hub models do
    (or its scores under another ``key``)."""

    image_size = 16

    def __init__(self, key: str = "logits") -> None:
        super().__init__()
        self.net, self.key = TinyGAP(dtype=torch.float32), key

    def forward(self, x):
        return {self.key: self.net(x), "features": self.net.features(x).mean((2, 3))}


def tiny_dict() -> nn.Module:
    return DictOutput().eval()


def tiny_dict_scores() -> nn.Module:
    return DictOutput("scores").eval()


class TinySegmenter(nn.Module):
    """A fully convolutional segmenter, {"out": (N, 3, H/2, W/2)} as torchvision's return."""

    image_size = 16

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(6, 6, 3, stride=2, padding=1), nn.ReLU())
        self.classifier = nn.Conv2d(6, 3, 1)

    def forward(self, x):
        return {"out": self.classifier(self.body(x))}


def tiny_segmenter() -> nn.Module:
    return TinySegmenter().eval()


def tiny_regressor() -> nn.Module:
    """TinyGAP with 3 real-valued outputs (no class names), for --regression."""
    return tiny_gap32()


class TinyFCN(nn.Module):
    """A fully convolutional classifier: convs, a 1x1 conv to the classes, global average
    pooling; no nn.Linear anywhere, so CAM cannot apply."""

    image_size = 16

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(6, 6, 3, padding=1), nn.ReLU())
        self.classifier = nn.Conv2d(6, 4, 1)

    def forward(self, x):
        return self.classifier(self.features(x)).mean((2, 3))


def tiny_fcn() -> nn.Module:
    return TinyFCN().eval()


def linear_model(classes: int = 5, side: int = 4, seed: int = 0):
    """f(x) = W x + b on (N, 3, side, side) images (float64), and W as (classes, 3, side,
    side): gradient methods have exact answers on it."""
    torch.manual_seed(seed)
    lin = nn.Linear(3 * side * side, classes).double()
    return nn.Sequential(nn.Flatten(), lin), lin.weight.detach().view(classes, 3, side, side)
