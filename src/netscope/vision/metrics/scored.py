"""What a metric is given and what it gives back (see ``metrics.registry``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from netscope.vision.core.targets import Resolved
from netscope.vision.models.zoo import Preprocess

Explain = Callable[[nn.Module, torch.Tensor, Any], torch.Tensor]


@dataclass
class MetricInput:
    """One method's maps on a batch: everything a metric may read."""

    model: nn.Module
    x: torch.Tensor  # (N, C, H, W) as the model takes it
    maps: torch.Tensor  # (N, h, w) in [0, 1]
    targets: Resolved
    preprocess: Preprocess | None = None
    explain: Explain | None = None  # recomputes the method's maps (model, x, targets)
    masks: torch.Tensor | None = None  # (N, H, W) in {0, 1}: where the object is
    batch_size: int = 16
    seed: int = 0


@dataclass
class Plot:
    """A curve the report draws: the x values and one row of y values per image."""

    x: torch.Tensor  # (K,)
    y: torch.Tensor  # (N, K)
    x_label: str
    y_label: str


@dataclass
class Scores:
    """A metric's result: per-image values of its columns; ``passed`` its verdict (metrics
    with one); ``plot`` the curve the report draws; ``record`` what evaluation.json keeps
    (JSON-ready)."""

    values: dict[str, torch.Tensor]
    passed: bool | None = None
    plot: Plot | None = None
    record: dict[str, Any] = field(default_factory=dict)
