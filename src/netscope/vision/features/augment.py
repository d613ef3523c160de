"""Random small transforms applied to the picture at each ascent step.

A picture that excites a unit only at one exact pixel alignment is an adversarial pattern,
not a feature. Shifting, scaling and rotating it a little before every step makes the
ascent find patterns that survive those changes, as the unit's real preferred inputs do.
One draw per step serves the whole batch, seeded by the step, so a filter's picture does not
depend on which other filters share the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Draw:
    dy: int = 0
    dx: int = 0
    angle: float = 0.0  # radians
    scale: float = 1.0

    @property
    def affine(self) -> bool:
        return self.angle != 0.0 or self.scale != 1.0


def draw(seed: int, jitter: int, rotate: float, scale_jitter: float) -> Draw:
    """One random transform: shifts up to ``jitter`` pixels, rotation up to ``rotate``
    degrees either way, scale within 1 +- ``scale_jitter``."""
    if not (jitter or rotate or scale_jitter):
        return Draw()
    gen = torch.Generator().manual_seed(seed)
    dy, dx = (torch.randint(-jitter, jitter + 1, (2,), generator=gen).tolist()
              if jitter else (0, 0))
    u = torch.rand(2, generator=gen, dtype=torch.float64).tolist()
    angle = math.radians(rotate) * (2 * u[0] - 1) if rotate else 0.0
    scale = 1.0 + scale_jitter * (2 * u[1] - 1) if scale_jitter else 1.0
    return Draw(int(dy), int(dx), angle, scale)


def apply(x: torch.Tensor, d: Draw) -> torch.Tensor:
    """The transformed batch (differentiable): a circular shift, then rotation and scaling
    about the centre with reflected borders."""
    if d.dy or d.dx:
        x = torch.roll(x, (d.dy, d.dx), (2, 3))
    if not d.affine:
        return x
    c, s = math.cos(d.angle) / d.scale, math.sin(d.angle) / d.scale
    theta = torch.tensor([[c, -s, 0.0], [s, c, 0.0]], dtype=x.dtype,
                         device=x.device).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)
