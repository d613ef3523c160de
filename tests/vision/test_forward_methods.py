"""Score-CAM, Ablation-CAM, Integrated Gradients and Occlusion against hand-computed
values on tiny models, batched against one image at a time, and their bad inputs."""

import numpy as np
import pytest
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.baselines import baseline_like
from netscope.vision.methods.forward_cams import ablation_cam, score_cam
from netscope.vision.methods.occlusion_map import occlusion
from netscope.vision.methods.path_integral import integrated_gradients
from tests.vision.tiny import TinyGAP, image

D = torch.float64


class TwoChannel(nn.Module):
    """The layer is the input's two channels (2x2); logit 0 = sum(W * A) + 0.5, logit 1 = 0."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Identity()
        self.W = torch.tensor([[[1.0, 2.0], [0.0, -1.0]], [[0.5, 0.5], [3.0, 0.0]]], dtype=D)

    def forward(self, x):
        a = self.layer(x)
        s = (a * self.W).sum((1, 2, 3)) + 0.5
        return torch.stack([s, torch.zeros_like(s)], 1)


X = torch.tensor([[[[1.0, 3.0], [2.0, 0.0]], [[0.0, 1.0], [4.0, 2.0]]]], dtype=D)


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def test_score_cam_weights_by_hand():
    model, a = TwoChannel(), X[0].numpy()
    W = model.W.numpy()
    weights = []
    for k in range(2):  # mask = min-max scaled channel k, applied to every channel
        m = (a[k] - a[k].min()) / (a[k].max() - a[k].min())
        weights.append(sigmoid((a * m * W).sum() + 0.5))  # softmax of [s, 0] = sigmoid(s)
    expected = np.maximum(weights[0] * a[0] + weights[1] * a[1], 0)
    got = score_cam(model, X, 0, layer="layer", normalize="none").maps[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_ablation_cam_weights_by_hand():
    model, a = TwoChannel(), X[0].numpy()
    W = model.W.numpy()
    y = (a * W).sum() + 0.5
    weights = [(W[k] * a[k]).sum() / y for k in range(2)]  # drop when channel k is zeroed
    expected = np.maximum(weights[0] * a[0] + weights[1] * a[1], 0)
    got = ablation_cam(model, X, 0, layer="layer", normalize="none").maps[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("method", [score_cam, ablation_cam])
def test_forward_cams_batched_equal_single_and_top_k(method):
    model, x = TinyGAP(), image(3, size=8, seed=4)
    batch = method(model, x, [0, 2, 1], layer="features.3", batch_size=4)
    for i, t in enumerate([0, 2, 1]):
        one = method(model, x[i:i + 1], t, layer="features.3", batch_size=64)
        torch.testing.assert_close(batch.maps[i], one.maps[0])
    top = method(model, x, [0, 2, 1], layer="features.3", top_k=5)  # all 5 channels
    torch.testing.assert_close(top.maps, batch.maps)
    fewer = method(model, x, [0, 2, 1], layer="features.3", top_k=2)
    assert fewer.maps.shape == batch.maps.shape and not torch.equal(fewer.maps, batch.maps)


def test_ablation_leaves_the_model_clean():
    model = TinyGAP()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ablation_cam(model, image(2), layer="features.3")
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_integrated_gradients_completeness_and_linear_case():
    model, x = TinyGAP(), image(2, size=8, seed=2)
    ig = integrated_gradients(model, x, [1, 2], baseline="zeros", steps=256, batch_size=50)
    error = ig.extras["completeness_error"]
    assert (error < 2e-3).all()  # ReLU kinks: the trapezoid rule converges
    coarse = integrated_gradients(model, x, [1, 2], baseline="zeros", steps=2)
    assert (coarse.extras["completeness_error"] > error).all()  # reported honestly
    # linear model: IG = (x - x') * W exactly, whatever the steps
    lin, xl = TwoChannel(), X
    one = integrated_gradients(lin, xl, 0, baseline="zeros", steps=1)
    torch.testing.assert_close(one.attributions[0], xl[0] * lin.W)
    assert float(one.extras["completeness_error"][0]) < 1e-12
    single = integrated_gradients(model, x[1:], 2, steps=256)
    torch.testing.assert_close(single.attributions[0], ig.attributions[1])


def test_occlusion_by_hand_on_a_linear_model():
    """Window 1, stride 1 on a linear model: the drop at each pixel is sum_c W_c x_c."""
    model = TwoChannel()
    got = occlusion(model, X, 0, window=1, stride=1, normalize="none").maps[0]
    expected = torch.relu((X[0] * model.W).sum(0))
    torch.testing.assert_close(got, expected)
    # window 2 over a 2x2 image: one position, every pixel gets the whole drop
    whole = occlusion(model, X, 0, window=2, stride=1, normalize="none").maps[0]
    torch.testing.assert_close(whole, torch.full((2, 2), float((X[0] * model.W).sum()),
                                                 dtype=D))


def test_occlusion_batched_equals_single():
    model, x = TinyGAP(), image(2, size=8, seed=1)
    batch = occlusion(model, x, [0, 1], window=3, stride=2, batch_size=5)
    for i in range(2):
        one = occlusion(model, x[i:i + 1], i, window=3, stride=2)
        torch.testing.assert_close(batch.maps[i], one.maps[0])


def test_bad_inputs():
    model, x = TinyGAP(), image(1)
    with pytest.raises(NetscopeError, match="steps must be a whole number >= 1"):
        integrated_gradients(model, x, steps=0)
    with pytest.raises(NetscopeError, match="does not fit images of shape"):
        integrated_gradients(model, x, baseline=torch.zeros(3, 4, 4))
    with pytest.raises(NetscopeError, match="unknown baseline 'grey'"):
        occlusion(model, x, window=3, baseline="grey")
    with pytest.raises(NetscopeError, match="window .* is larger than the image"):
        occlusion(model, x, window=9)
    with pytest.raises(NetscopeError, match="no spatial grid"):
        score_cam(model, x, layer="fc")
    with pytest.raises(NetscopeError, match="top_k must be"):
        ablation_cam(model, x, layer="features.3", top_k=0)


def test_baselines():
    x = image(2, size=16)
    assert torch.equal(baseline_like(x, "zeros"), torch.zeros_like(x))
    mean = baseline_like(x, "mean")
    torch.testing.assert_close(mean[:, :, 3, 5], x.mean((2, 3)))
    blur = baseline_like(x, "blur")
    assert blur.shape == x.shape and blur.std() < 0.5 * x.std()
    torch.testing.assert_close(blur.mean(), x.mean(), atol=0.05, rtol=0)
    shared = baseline_like(x, torch.ones(3, 16, 16))
    assert shared.shape == x.shape and (shared == 1).all()
