"""A tiny CNN with hand-set weights for the unit atlas: known detectors at known places.

- ``detect`` (5x5, padding 2): unit 0 answers a 5x5 red square on grey (R - (G + B) / 2
  summed over the window: 25 at the square's centre, less anywhere else), unit 1 a
  vertical dark-to-bright edge, unit 2 is a copy of unit 0;
- ``spread`` (3x3, stride 2, padding 2, dilation 2, centre tap only): passes each unit on,
  so its unit (y, x) is ``detect``'s unit (2y, 2x): field 9x9, jump 2, start 0;
- ``mix`` (1x1): unit 0 = spread 0 + spread 1, unit 1 = spread 2;
- global average pooling and a linear head, so the model classifies.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from netscope.vision.models.zoo import LoadedModel, Preprocess

SIZE = 32
GREY = 0.5


class Detector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.detect = nn.Conv2d(3, 3, 5, padding=2, bias=False)
        self.relu = nn.ReLU()
        self.spread = nn.Conv2d(3, 3, 3, stride=2, padding=2, dilation=2, bias=False)
        self.mix = nn.Conv2d(3, 2, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 3)
        with torch.no_grad():
            w = torch.zeros(3, 3, 5, 5)
            w[0, 0], w[0, 1], w[0, 2] = 1.0, -0.5, -0.5
            w[1, :, :, 3:], w[1, :, :, :2] = 1.0, -1.0
            w[2] = w[0]
            self.detect.weight.copy_(w)
            s = torch.zeros(3, 3, 3, 3)
            for c in range(3):
                s[c, c, 1, 1] = 1.0
            self.spread.weight.copy_(s)
            self.mix.weight.copy_(torch.tensor([[1.0, 1, 0], [0, 0, 1]]).view(2, 3, 1, 1))
            self.fc.weight.copy_(torch.tensor([[1.0, 0], [0, 1], [0.5, 0.5]]))
            self.fc.bias.zero_()

    def forward(self, x):
        a = self.mix(self.relu(self.spread(self.relu(self.detect(x)))))
        return self.fc(self.pool(a).flatten(1))


def detector() -> Detector:
    return Detector().eval()


def loaded() -> LoadedModel:
    return LoadedModel("detector", detector(), Preprocess(SIZE, (0.0, 0.0, 0.0),
                                                          (1.0, 1.0, 1.0)), None)


def grey(rng: np.random.Generator) -> np.ndarray:
    return np.clip(GREY + 0.02 * rng.standard_normal((SIZE, SIZE, 3)), 0, 1)


def red_square(rng, cy: int, cx: int) -> np.ndarray:
    img = grey(rng)
    img[cy - 2:cy + 3, cx - 2:cx + 3] = (1.0, 0.0, 0.0)
    return img


def edge(rng, x: int) -> np.ndarray:
    img = grey(rng)
    img[:, :x] = 0.1
    img[:, x:] = 0.9
    return img
