"""Gradient ascent: the objective rises, and batching does not change a filter's picture."""

import pytest
import torch

from netscope.errors import NetscopeError
from netscope.vision.features.activations import activations
from netscope.vision.features.ascent import AscentConfig, visualize_classes, visualize_filters
from netscope.vision.models.zoo import Preprocess
from tests.vision.tiny import TinyGAP

PRE = Preprocess(16)


def _float32():
    return TinyGAP(dtype=torch.float32)


def test_filter_objective_rises_monotonically():
    res = visualize_filters(_float32(), "features.2", [0, 1, 2], PRE,
                            AscentConfig(steps=8, size=16, lr=0.02))
    first = res.history[:6]
    assert (first[1:] > first[:-1]).all()
    assert res.images.shape == (3, 3, 16, 16)
    assert res.images.min() >= 0 and res.images.max() <= 1


def test_class_logit_rises_monotonically():
    res = visualize_classes(_float32(), [0, 2], PRE, AscentConfig(steps=8, size=16, lr=0.02))
    first = res.history[:6]
    assert (first[1:] > first[:-1]).all()


@pytest.mark.parametrize("cfg", [AscentConfig(steps=6, size=16),
                                 AscentConfig(steps=6, size=16, jitter=2, blur_every=2, tv=0.1,
                                              octaves=2)])
def test_batched_filter_equals_single(cfg):
    model = _float32()
    batch = visualize_filters(model, "features.2", [1, 3], PRE, cfg)
    alone = visualize_filters(model, "features.2", [3], PRE, cfg)
    torch.testing.assert_close(batch.images[1], alone.images[0], atol=1e-5, rtol=1e-5)


def test_bad_channel_and_class():
    with pytest.raises(NetscopeError, match="has 4 channels; channel 9 does not exist"):
        visualize_filters(_float32(), "features.0", [9], PRE, AscentConfig(steps=1, size=16))
    with pytest.raises(NetscopeError, match="class index 5 is out of range"):
        visualize_classes(_float32(), [5], PRE, AscentConfig(steps=1, size=16))


def test_center_objective_is_the_centre_unit():
    model = _float32()
    res = visualize_filters(model, "features.2", [0, 1], PRE,
                            AscentConfig(steps=8, size=16, lr=0.02), objective="center")
    first = res.history[:6]
    assert (first[1:] > first[:-1]).all()
    assert res.labels == [f"features.2 channel {c} (centre unit)" for c in (0, 1)]
    # the recorded objective is the centre value of the channel's map for the picture
    x = PRE.normalize(torch.full((1, 3, 16, 16), 0.5))
    a = activations(model, x, ["features.2"])["features.2"]
    start = visualize_filters(model, "features.2", [1], PRE,
                              AscentConfig(steps=1, size=16, noise=0.0), objective="center")
    assert float(start.history[0, 0]) == pytest.approx(float(a[0, 1, 8, 8]), rel=1e-5)


def test_bad_objectives():
    with pytest.raises(NetscopeError, match="unknown objective 'peak'"):
        visualize_filters(_float32(), "features.2", [0], PRE, AscentConfig(steps=1, size=16),
                          objective="peak")
    with pytest.raises(NetscopeError, match="layer fc has no spatial grid"):
        visualize_filters(_float32(), "fc", [0], PRE, AscentConfig(steps=1, size=16),
                          objective="center")


def test_progress_reports_every_step():
    seen = []
    visualize_classes(_float32(), [0, 1], PRE, AscentConfig(steps=3, size=16, octaves=2),
                      progress=lambda done, total, v: seen.append((done, total, tuple(v.shape))))
    assert seen == [(k, 6, (2,)) for k in range(1, 7)]
