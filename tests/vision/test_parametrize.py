"""Image parametrizations: the Fourier one starts grey, scales amplitude by 1/frequency,
decorrelates colour, and drives ascent as the pixel one does (batch-independent, rising)."""

import numpy as np
import pytest
import torch

from netscope.errors import NetscopeError
from netscope.vision.features.ascent import AscentConfig, visualize_classes, visualize_filters
from netscope.vision.features.parametrize import FourierParam, colour_basis, image_param
from netscope.vision.models.images import SAMPLES, sample_image
from netscope.vision.models.zoo import Preprocess
from tests.vision.tiny import TinyGAP

PRE = Preprocess(16)


def _decorrelated(param: FourierParam, p: torch.Tensor) -> torch.Tensor:
    """Undo the sigmoid and the colour matrix: the picture in the decorrelated basis."""
    img = param.to_image(p)
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(param.colour), torch.logit(img))


def test_zero_coefficients_are_grey():
    param = FourierParam(PRE, 16, torch.float64)
    grey = param.to_image(torch.zeros(2, 3, 16, 9, 2, dtype=torch.float64))
    torch.testing.assert_close(grey, torch.full((2, 3, 16, 16), 0.5, dtype=torch.float64))


def test_amplitude_falls_as_one_over_frequency():
    param = FourierParam(PRE, 32, torch.float64)
    p = torch.zeros(2, 3, 32, 17, 2, dtype=torch.float64)
    p[0, 0, 0, 1, 0] = 0.01  # one cycle across the picture
    p[1, 0, 0, 4, 0] = 0.01  # four cycles
    d = _decorrelated(param, p)[:, 0]
    amp = d.abs().amax((1, 2))
    assert float(amp[0] / amp[1]) == pytest.approx(4.0, rel=1e-9)
    x = torch.arange(32, dtype=torch.float64)
    cos1 = torch.cos(2 * torch.pi * x / 32)  # a cosine along x, constant along y
    torch.testing.assert_close(d[0] / amp[0], cos1.expand(32, 32))


def test_colour_basis_whitens_the_sample_photos():
    m = colour_basis()
    pixels = np.concatenate([sample_image(s)[::4, ::4].reshape(-1, 3) for s in SAMPLES])
    inv = np.linalg.inv(m)
    white = inv @ np.cov(pixels.T.astype(np.float64)) @ inv.T
    np.testing.assert_allclose(white, white[0, 0] * np.eye(3), atol=1e-9 * white[0, 0])
    assert (m[:, 0] > 0).all()  # first direction: brightness, all channels together


@pytest.mark.parametrize("run", [
    lambda m, cfg: visualize_filters(m, "features.2", [0, 1, 2], PRE, cfg),
    lambda m, cfg: visualize_classes(m, [0, 2], PRE, cfg)])
def test_fourier_ascent_rises(run):
    res = run(TinyGAP(dtype=torch.float32), AscentConfig(steps=8, size=16, param="fourier",
                                                        lr=0.005))
    first = res.history[:6]
    assert (first[1:] > first[:-1]).all()
    assert res.images.min() >= 0 and res.images.max() <= 1


def test_fourier_batched_equals_single():
    model = TinyGAP()
    cfg = AscentConfig(steps=6, size=16, param="fourier", jitter=2, rotate=10,
                       scale_jitter=0.1)
    batch = visualize_filters(model, "features.2", [1, 3], PRE, cfg)
    alone = visualize_filters(model, "features.2", [3], PRE, cfg)
    torch.testing.assert_close(batch.images[1], alone.images[0])
    assert batch.images.dtype == torch.float64


@pytest.mark.parametrize("kwargs, message", [
    (dict(param="fourier", octaves=2), "octaves and blur work on the pixel"),
    (dict(param="fourier", blur_every=2), "octaves and blur work on the pixel"),
    (dict(param="wavelet"), "unknown parametrization 'wavelet'"),
    (dict(scale_jitter=1.5), "0 <= scale_jitter < 1; got scale_jitter = 1.5"),
    (dict(rotate=-3), "got rotate = -3"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(NetscopeError, match=message):
        AscentConfig(**kwargs)
    with pytest.raises(NetscopeError, match="unknown parametrization"):
        image_param("wavelet", PRE, 16, torch.float32)


def test_learning_rate_defaults_by_parametrization():
    assert AscentConfig().lr == 0.1
    assert AscentConfig(param="fourier").lr == 0.03
    assert AscentConfig(param="fourier", lr=0.5).lr == 0.5
