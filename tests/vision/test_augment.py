"""Random ascent transforms: exact where they should be, reproducible, within their bounds."""

import math

import pytest
import torch

from netscope.vision.features import augment
from tests.vision.tiny import image


def test_no_transform_is_the_identity():
    x = image(2, 8)
    d = augment.draw(3, 0, 0.0, 0.0)
    assert d == augment.Draw() and augment.apply(x, d) is x


def test_quarter_turn_equals_rot90():
    x = image(2, 8)
    turned = augment.apply(x, augment.Draw(angle=math.pi / 2))
    torch.testing.assert_close(turned, torch.rot90(x, 1, (2, 3)), atol=1e-12, rtol=0)


def test_shift_is_circular_and_differentiable():
    x = image(1, 8).requires_grad_(True)
    y = augment.apply(x, augment.Draw(dy=1, dx=-2, scale=1.2))
    (g,) = torch.autograd.grad(y[..., 3, 3].sum(), x)
    assert g.abs().sum() > 0
    torch.testing.assert_close(augment.apply(x, augment.Draw(dy=1, dx=-2)),
                               torch.roll(x, (1, -2), (2, 3)))


def test_draws_are_seeded_and_bounded():
    draws = [augment.draw(s, 4, 10.0, 0.1) for s in range(200)]
    assert augment.draw(7, 4, 10.0, 0.1) == draws[7]
    assert all(-4 <= d.dy <= 4 and -4 <= d.dx <= 4 for d in draws)
    assert all(abs(d.angle) <= math.radians(10) and 0.9 <= d.scale <= 1.1 for d in draws)
    assert len({(d.dy, d.dx) for d in draws}) > 30  # really random


@pytest.mark.parametrize("scale", [0.8, 1.25])
def test_rescaling_keeps_a_constant_picture(scale):
    x = torch.full((1, 3, 8, 8), 0.3, dtype=torch.float64)
    torch.testing.assert_close(augment.apply(x, augment.Draw(scale=scale)), x)
