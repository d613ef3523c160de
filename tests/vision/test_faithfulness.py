"""Faithfulness metrics on models where the right answer is known: deletion/insertion
(exact curves by hand), ROAD's imputation, the confidence change, and the randomization
sanity check."""

import numpy as np
import pytest
import torch
from torch import nn

from netscope import vision as A
from netscope.errors import NetscopeError
from netscope.vision.metrics.faithfulness import confidence_change, deletion, insertion, pixel_ranks
from netscope.vision.metrics.road import impute, road
from netscope.vision.metrics.sanity import cascading_randomization, parameter_groups
from tests.vision.tiny import TinyGAP, image

D = torch.float64


class Quadrant(nn.Module):
    """The class-0 logit sees only the top-left quadrant: 8 * its mean - 4."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(8.0, dtype=D))

    def forward(self, x):
        h, w = x.shape[-2:]
        s = self.scale * x[:, :, : h // 2, : w // 2].mean((1, 2, 3)) - 4
        return torch.stack([s, torch.zeros_like(s)], 1)


class Linear(nn.Module):
    """logit 0 = sum over channels and pixels of W * x (W per pixel, same on all channels)."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.as_tensor(w, dtype=D))

    def forward(self, x):
        s = (x * self.w).sum((1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], 1)


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def quadrant_case(size=8):
    x = torch.zeros(1, 3, size, size, dtype=D)
    x[..., : size // 2, : size // 2] = 1.0  # a bright object where the model looks
    true = torch.zeros(1, size, size, dtype=D)
    true[0, : size // 2, : size // 2] = 1.0
    true += 0.01 * torch.rand(1, size, size, generator=torch.Generator().manual_seed(0),
                              dtype=D)
    rand = torch.rand(1, size, size, generator=torch.Generator().manual_seed(1), dtype=D)
    return x, true, rand, true.max() - true


def test_true_map_beats_random_and_inverted():
    model, (x, true, rand, inverted) = Quadrant(), quadrant_case()
    d = {k: float(deletion(model, x, m, 0, steps=16, baseline="zeros").auc[0])
         for k, m in (("true", true), ("random", rand), ("inverted", inverted))}
    i = {k: float(insertion(model, x, m, 0, steps=16, start="zeros").auc[0])
         for k, m in (("true", true), ("random", rand), ("inverted", inverted))}
    assert d["true"] < d["random"] < d["inverted"]
    assert i["true"] > i["random"] > i["inverted"]
    r = {k: float(road(model, x, m, 0, percentages=(20, 50, 80)).gap[0])
         for k, m in (("true", true), ("inverted", inverted))}
    assert r["true"] > 0.2 > r["inverted"]


def test_deletion_and_insertion_curves_by_hand():
    w = np.array([[1.0, -2.0], [3.0, 0.5]])
    model = Linear(torch.tensor(w).view(1, 1, 2, 2))
    x = torch.tensor([[1.0, 2.0], [0.5, 1.0]], dtype=D).expand(1, 3, 2, 2).clone()
    m = torch.tensor([[[0.2, 0.9], [0.5, 0.1]]], dtype=D)  # order: (0,1), (1,0), (0,0), (1,1)
    contrib = 3 * w * x[0, 0].numpy()  # each pixel's share of the logit, 3 channels
    order = [(0, 1), (1, 0), (0, 0), (1, 1)]
    left, expected = contrib.sum(), [sigmoid(contrib.sum())]
    for p in order:  # deletion with zeros: the pixel's share leaves the logit
        left -= contrib[p]
        expected.append(sigmoid(left))
    c = deletion(model, x, m, 0, steps=4, baseline="zeros", batch_size=2)
    np.testing.assert_allclose(c.scores[0].numpy(), expected)
    np.testing.assert_allclose(c.fractions.numpy(), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(float(c.auc[0]), np.trapezoid(expected, [0, .25, .5, .75, 1]))
    ins = insertion(model, x, m, 0, steps=2, start="zeros")  # 0, 2, then 4 pixels restored
    np.testing.assert_allclose(ins.scores[0].numpy(), [
        sigmoid(0), sigmoid(contrib[0, 1] + contrib[1, 0]), sigmoid(contrib.sum())])


def test_batched_equals_one_at_a_time():
    model, x = TinyGAP(), image(3, size=8, seed=5)
    maps = A.grad_cam(model, x, [0, 1, 2], layer="features.3")
    all_ = deletion(model, x, maps, steps=8, batch_size=5)
    for i in range(3):
        one = deletion(model, x[i:i + 1], maps.maps[i:i + 1], int(maps.classes[i]), steps=8,
                       batch_size=64)
        torch.testing.assert_close(all_.scores[i], one.scores[0])


def test_ranks_are_a_stable_permutation():
    m = torch.tensor([[[0.5, 0.9], [0.5, 0.1]]])
    assert pixel_ranks(m).tolist() == [[1, 0, 2, 3]]  # ties keep pixel order


def test_road_imputation_recovers_a_linear_ramp():
    yy, xx = np.mgrid[0:12, 0:16].astype(float)
    ramp = np.stack([2 * yy + xx, yy - 3 * xx, 0.5 * yy])
    removed = np.zeros((12, 16), bool)
    removed[3:9, 4:11] = True  # an interior hole: neighbour means of a plane are exact
    removed[5, 14] = True
    np.testing.assert_allclose(impute(ramp, removed), ramp, atol=1e-9)
    corner = removed.copy()
    corner[0, 0] = True  # at the border the weights renormalize: still finite and close
    assert np.isfinite(impute(ramp, corner)).all()


def test_confidence_change_by_hand():
    w = np.array([[1.0, 2.0], [0.0, 1.0]])
    model = Linear(torch.tensor(w).view(1, 1, 2, 2))
    x = torch.ones(1, 3, 2, 2, dtype=D)
    m = torch.tensor([[[1.0, 0.5], [0.0, 0.0]]], dtype=D)
    cc = confidence_change(model, x, m, 0)
    y, o = sigmoid(3 * 4.0), sigmoid(3 * (1.0 + 1.0))
    np.testing.assert_allclose([float(cc.original[0]), float(cc.explained[0])], [y, o])
    np.testing.assert_allclose(float(cc.drop[0]), (y - o) / y)
    assert float(cc.increase[0]) == 0.0


def test_sanity_check_changes_gradient_maps_and_flags_an_edge_detector():
    model, x = TinyGAP(), image(2, size=8, seed=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    t = torch.tensor([0, 1])

    def gradcam(m, xx, tt):
        return A.grad_cam(m, xx, tt, layer="features.3").maps

    def edges(m, xx, tt):  # ignores the model: the classic failing case
        return (xx[:, :, 1:, 1:] - xx[:, :, :-1, :-1]).abs().sum(1)

    ok = cascading_randomization(model, x, gradcam, t)
    assert ok.depth == [1, 2, 3] and ok.stages == ["fc", "features.2", "features.0"]
    assert ok.passed and (ok.spearman[-1] < 0.9).all()
    bad = cascading_randomization(model, x, edges, t, checkpoints=1)
    assert not bad.passed and bad.final_spearman == pytest.approx(1.0)
    assert np.allclose(bad.ssim, 1.0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_parameter_groups_from_the_head_down():
    names = [g for g, _ in parameter_groups(TinyGAP())]
    assert names == ["fc", "features.2", "features.0"]


def test_bad_inputs():
    model, x = TinyGAP(), image(1)
    maps = A.grad_cam(model, x, layer="features.3")
    with pytest.raises(NetscopeError, match="steps must be a whole number >= 1"):
        deletion(model, x, maps, steps=0)
    with pytest.raises(NetscopeError, match="does not fit images"):
        deletion(model, x, maps, baseline=torch.zeros(1, 3, 5, 5))
    with pytest.raises(NetscopeError, match="unknown baseline"):
        insertion(model, x, maps, start="noise")
    with pytest.raises(NetscopeError, match="do not fit 1 image"):
        deletion(model, x, torch.zeros(2, 4, 4))
    with pytest.raises(NetscopeError, match="strictly between 0 and 100"):
        road(model, x, maps, percentages=(0, 50))

    class NoScores(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(NetscopeError, match="class scores of shape"):
        deletion(NoScores(), x, torch.zeros(1, 8, 8), 0)
