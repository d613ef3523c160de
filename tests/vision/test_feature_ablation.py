"""Feature ablation over grid cells and SLIC superpixels: the linear model's answer, Captum
with the same mask, and the errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.methods.registry import explain
from netscope.vision.methods.segments import segment_masks


def _linear():
    torch.manual_seed(0)
    lin = nn.Linear(3 * 8 * 8, 4).double()
    return nn.Sequential(nn.Flatten(), lin), lin


def test_on_a_linear_model_each_pixel_gets_its_segments_term_of_the_score():
    model, lin = _linear()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    heat = explain("feature-ablation", model, x, [1, 3], cells=2, baseline="zeros")
    seg = heat.extras["segments"]
    assert seg.shape == (2, 8, 8) and int(seg.max()) == 3  # a 2 x 2 grid
    assert (seg[0, :4, :4] == 0).all() and (seg[0, 4:, 4:] == 3).all()
    W = lin.weight.detach().view(4, 3, 8, 8)
    for i, c in enumerate((1, 3)):
        terms = (W[c] * x[i]).sum(0)  # each pixel's term of the score
        for k in range(4):
            inside = seg[i] == k
            expected = terms[inside].sum()
            torch.testing.assert_close(heat.attributions[i, :, inside],
                                       expected.expand(3, int(inside.sum())))


def test_equal_to_captum_with_the_same_mask_where_installed():
    captum = pytest.importorskip("captum.attr", reason="Captum is a peer, not a dependency")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 5)).double()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    heat = explain("feature-ablation", net, x, [1, 2], cells=4, batch_size=5)
    ref = captum.FeatureAblation(net).attribute(x.clone(), target=[1, 2], baselines=0.0,
                                                feature_mask=heat.extras["segments"][:, None])
    torch.testing.assert_close(heat.attributions, ref, rtol=0, atol=1e-12)


def test_superpixels_follow_the_image():
    x = torch.zeros(1, 3, 32, 32, dtype=torch.float64)
    x[:, :, :, 16:] = 1.0  # two flat halves
    seg = segment_masks(x, "slic", 4)[0]
    assert int(seg.max()) >= 1
    assert (seg[:, :16].unique()[:, None] != seg[:, 16:].unique()[None, :]).all()


@pytest.mark.parametrize("settings, message", [
    ({"cells": 9}, "more cells than the image"),
    ({"segments": "slic", "cells": 65}, "65 superpixels asked of a 8x8 image"),
    ({"segments": "voronoi"}, "must be one of grid, slic"),
    ({"segments": torch.zeros(5, 5, dtype=torch.long)}, "segments must be (N, H, W)"),
    ({"cells": 0}, "cells"),
    ({"batch_size": 0}, "batch_size"),
])
def test_bad_settings_say_what_is_wrong(settings, message):
    model, _ = _linear()
    with pytest.raises(NetscopeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        explain("feature-ablation", model, torch.randn(1, 3, 8, 8, dtype=torch.float64),
                **settings)
