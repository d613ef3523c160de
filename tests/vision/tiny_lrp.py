"""Small networks for LRP, shaped like the architectures it must handle without user code:
VGG-style (convolution, batch norm, ReLU, max pooling, dense layers) and ResNet-style
(residual sums, a 1x1 shortcut, grouped and depthwise convolutions). Pure PyTorch, so the
Zennit comparison (benchmarks/peer_lrp_zennit.py) builds the same networks. Batch norm
statistics are random, so merging it into the convolution matters."""

from __future__ import annotations

import torch
from torch import nn


def _bn(c: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    return bn


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups), _bn(cout))


class TinyVGG(nn.Module):
    def __init__(self, classes: int = 5, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(
            *conv_bn(3, 8), nn.ReLU(inplace=True), *conv_bn(8, 8), nn.ReLU(inplace=True),
            nn.MaxPool2d(2), *conv_bn(8, 12), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.ReLU(),
                                        nn.Dropout(0.5), nn.Linear(16, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class Add(nn.Module):
    """A residual sum as a module, so a peer library can be given its own sum rule."""

    def forward(self, a, b):
        return a + b


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.branch = nn.Sequential(conv_bn(cin, cout, 3, stride, groups=1), nn.ReLU(),
                                    conv_bn(cout, cout, 3, 1, groups=2), nn.ReLU(),
                                    conv_bn(cout, cout, 3, 1, groups=cout))  # depthwise
        self.shortcut = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else \
            nn.Identity()
        self.add = Add()
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.add(self.branch(x), self.shortcut(x)))


class TinyResNet(nn.Module):
    def __init__(self, classes: int = 5, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.stem = nn.Sequential(conv_bn(3, 8), nn.ReLU())
        self.blocks = nn.Sequential(Block(8, 8), Block(8, 12, stride=2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, classes)

    def forward(self, x):
        return self.fc(self.pool(self.blocks(self.stem(x))).flatten(1))


class BiasFree(nn.Module):
    """conv -> ReLU -> conv -> ReLU -> sum pooling (avg) -> dense, every bias off: LRP-0
    conserves the score exactly."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.ReLU(),
                                 nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(6, 4, bias=False))

    def forward(self, x):
        return self.net(x)


def eps_into_variance(model: nn.Module) -> nn.Module:
    """The same function with every batch norm's eps moved into its running variance:
    Zennit's merge leaves a batch norm computing x / sqrt(1 + eps) instead of the identity
    (a 1e-5..1e-3 shrink per layer); with eps 0 its merge is exact, as netscope's is. Used
    by both sides of the Zennit comparison (benchmarks/peer_lrp_zennit.py, bench_lrp.py)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_var.data += m.eps
            m.eps = 0.0
    return model


def inputs(n: int = 2, size: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
