"""Grad-CAM, CAM, saliency and friends on tiny models with hand-computed results."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netscope import vision as A
from netscope.errors import NetscopeError
from netscope.vision.core.heatmaps import Heatmaps
from netscope.vision.core.layer_choice import default_layer
from netscope.vision.methods import guided
from netscope.vision.methods.eigen import first_singular_projection
from netscope.vision.methods.grad_cam_family import layer_gradients
from tests.vision.tiny import Reused, TinyGAP, image


class HandNet(nn.Module):
    """x (1x1x2x2) -> 1x1 conv to 2 channels -> flatten -> linear to 2 classes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1).double()
        self.fc = nn.Linear(8, 2).double()
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.0, 2.0]))
            self.fc.weight.copy_(torch.tensor([[1, 0, 0, 1, 2, 2, 2, 2],
                                               [0, 0, 0, 0, 0, 0, 0, 0]], dtype=torch.float64))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


def test_grad_cam_by_hand():
    # A0 = x = [[1,2],[3,4]], A1 = 2 - x = [[1,0],[-1,-2]]
    # class 0: alpha = (mean(1,0,0,1), mean(2,2,2,2)) = (0.5, 2)
    # map = relu(0.5 A0 + 2 A1) = relu([[2.5, 1], [-0.5, -2]]) = [[2.5, 1], [0, 0]]
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)
    raw = A.grad_cam(HandNet(), x, 0, layer="conv", normalize="none")
    torch.testing.assert_close(raw.maps[0], torch.tensor([[2.5, 1.0], [0.0, 0.0]],
                                                          dtype=torch.float64))
    norm = A.grad_cam(HandNet(), x, 0, layer="conv")
    torch.testing.assert_close(norm.maps[0], torch.tensor([[1.0, 0.4], [0.0, 0.0]],
                                                           dtype=torch.float64))


@pytest.mark.parametrize("method, expected", [
    # x = [[1,0],[0,3]]: A0 = x, A1 = 2 - x = [[1,2],[2,-1]]; class 0: g0 = [[1,0],[0,1]], g1 = 2
    ("gradcam", [[2.5, 4.0], [4.0, 0.0]]),  # alpha = (0.5, 2): relu(0.5 A0 + 2 A1)
    ("xgradcam", [[3.0, 4.0], [4.0, 1.0]]),  # alpha = ((1 + 3) / 4, 2 * 4 / 4) = (1, 2)
    ("layercam", [[3.0, 4.0], [4.0, 1.0]]),  # relu(g0) * A0 + 2 * A1
    ("hirescam", [[3.0, 4.0], [4.0, 1.0]]),  # g0 * A0 + g1 * A1
])
def test_cam_family_by_hand(method, expected):
    x = torch.tensor([[[[1.0, 0.0], [0.0, 3.0]]]], dtype=torch.float64)
    raw = A.grad_cam(HandNet(), x, 0, layer="conv", variant=method, normalize="none")
    torch.testing.assert_close(raw.maps[0], torch.tensor(expected, dtype=torch.float64))


def test_xgradcam_and_layercam_on_gap_head():
    """With GAP + linear, dy/dA_k = w_k / hw everywhere: XGrad-CAM and HiResCAM equal
    Grad-CAM, and LayerCAM keeps only the positively weighted channels."""
    model, x = TinyGAP(), image(2)
    for target in (0, 1, 2):
        g = A.grad_cam(model, x, target, layer="features.3", normalize="none")
        for same in ("xgradcam", "hirescam"):
            other = A.grad_cam(model, x, target, layer="features.3", variant=same, normalize="none")
            torch.testing.assert_close(other.maps, g.maps)
        lc = A.grad_cam(model, x, target, layer="features.3", variant="layercam", normalize="none")
        acts = layer_gradients(model, x, "features.3", target)[0]
        w = model.fc.weight[target].detach().clamp(min=0) / acts[0, 0].numel()
        torch.testing.assert_close(lc.maps, torch.relu((w[:, None, None] * acts).sum(1)))


class RankOne(nn.Module):
    """1x1 conv from one channel to four (weights of both signs): A_k = a_k * x."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 1, bias=False).double()
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([2.0, -1.0, 0.5, 3.0]).view(4, 1, 1, 1))
        self.fc = nn.Linear(4, 3).double()

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


def test_eigen_cam_recovers_a_rank_one_pattern():
    pattern = torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.5, 0.0], [1.0, 1.0, 4.0]],
                           dtype=torch.float64)
    for sign in (1.0, -1.0):  # A_k = a_k * (+-pattern): the same map either way
        h = A.eigen_cam(RankOne(), sign * pattern.view(1, 1, 3, 3), layer="conv")
        torch.testing.assert_close(h.maps[0], pattern / pattern.max())
    assert h.method == "eigencam" and h.classes.shape == (1,)


def test_zero_gradient_gives_zero_map_not_nan():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)
    for how in ("max", "minmax"):
        h = A.grad_cam(HandNet(), x, 1, layer="conv", normalize=how)  # class 1: all-zero row
        assert torch.isfinite(h.maps).all() and (h.maps == 0).all()


def test_cam_equals_grad_cam_on_gap_head():
    model, x = TinyGAP(), image(2)
    for target in (0, 1, 2):
        c = A.cam(model, x, target, layer="features.3", normalize="none")
        g = A.grad_cam(model, x, target, layer="features.3", normalize="none")
        hw = c.maps.shape[-1] * c.maps.shape[-2]
        torch.testing.assert_close(g.maps * hw, c.maps, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(A.normalize_maps(g.maps), A.normalize_maps(c.maps),
                                   rtol=1e-5, atol=1e-5)


def test_default_layer_is_the_pooled_feature_map():
    model = TinyGAP()
    assert str(default_layer(model)) == "pool:input"
    a = A.grad_cam(model, image(), targets=1, normalize="none").maps
    b = A.grad_cam(model, image(), 1, layer="features.3", normalize="none").maps
    torch.testing.assert_close(a, b)


def test_per_image_targets_match_single_calls():
    model, x = TinyGAP(), image(3)
    batch = A.grad_cam(model, x, [0, 2, 1], layer="features.2")
    for i, t in enumerate([0, 2, 1]):
        one = A.grad_cam(model, x[i:i + 1], t, layer="features.2")
        torch.testing.assert_close(batch.maps[i], one.maps[0])
    assert batch.classes.tolist() == [0, 2, 1]


def test_default_target_is_each_images_top_class():
    model, x = TinyGAP(), image(4, seed=3)
    h = A.grad_cam(model, x)
    assert torch.equal(h.classes, model(x).argmax(1))


def test_saliency_equals_finite_differences():
    model, x = TinyGAP(), image(1, size=5)
    s = A.saliency(model, x, targets=2)
    eps = 1e-6
    fd = torch.zeros_like(x)
    with torch.no_grad():
        for idx in np.ndindex(*x.shape):
            d = torch.zeros_like(x)
            d[idx] = eps
            fd[idx] = (model(x + d)[0, 2] - model(x - d)[0, 2]) / (2 * eps)
    expected = fd.abs().amax(1)
    torch.testing.assert_close(s.maps, expected / expected.max(), rtol=1e-5, atol=1e-6)


def test_smoothgrad_is_mean_of_absolute_noisy_gradients():
    model, x = TinyGAP(), image(1, size=6)
    s = A.saliency(model, x, targets=0, samples=4, noise=0.1, seed=5)
    gen = torch.Generator().manual_seed(5)
    sd = 0.1 * float(x.max() - x.min())
    total = torch.zeros_like(x)
    for _ in range(4):
        xi = (x + torch.randn(x.shape, generator=gen, dtype=x.dtype) * sd).requires_grad_()
        model(xi)[0, 0].backward()
        total += xi.grad.abs()
    m = (total / 4).amax(1)
    torch.testing.assert_close(s.maps, m / m.max())


def test_smoothgrad_needs_positive_noise():
    with pytest.raises(NetscopeError, match="noise must be a positive fraction"):
        A.saliency(TinyGAP(), image(1, size=6), samples=2, noise=-0.1)


def test_gradcampp_formula():
    model, x = TinyGAP(), image(1)
    Aa, g, _, _ = layer_gradients(model, x, "features.3", 1)
    a, gg = Aa.numpy()[0], g.numpy()[0]
    alpha = []
    for k in range(a.shape[0]):
        num, den = gg[k] ** 2, 2 * gg[k] ** 2 + a[k].sum() * gg[k] ** 3
        coef = np.where(den != 0, num / np.where(den != 0, den, 1), 0)
        alpha.append((coef * np.maximum(gg[k], 0)).sum())
    expected = np.maximum((np.array(alpha)[:, None, None] * a).sum(0), 0)
    got = A.grad_cam(model, x, 1, layer="features.3", variant="gradcam++", normalize="none").maps[0]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


def test_guided_grad_cam_shape_and_relus_restored():
    model, x = Reused(), image(2)
    out = guided.guided_grad_cam(model, x, [0, 1], layer="conv2")
    assert out.attributions.shape == x.shape and torch.isfinite(out.attributions).all()
    assert "forward" not in model.act.__dict__
    # guided backprop (through guided ReLUs) times the Grad-CAM map upsampled to the input
    cam = A.grad_cam(model, x, [0, 1], layer="conv2")
    up = F.interpolate(cam.maps[:, None], size=(8, 8), mode="bilinear", align_corners=False)
    up = up / up.flatten(1).amax(1).view(-1, 1, 1, 1)
    expected = guided.guided_backprop(model, x, [0, 1]) * up
    assert expected.abs().sum() > 0
    torch.testing.assert_close(out.attributions, expected)
    total = expected.abs().sum(1)
    torch.testing.assert_close(out.maps, total / total.flatten(1).amax(1).view(-1, 1, 1))
    assert out.method == "guided" and out.classes.tolist() == [0, 1]


def test_guided_backprop_passes_only_positive_signals():
    relu = nn.ReLU()
    with guided.guided_relus(nn.Sequential(relu)):
        x = torch.tensor([-1.0, 2.0, 3.0], requires_grad=True)
        relu(x).mul(torch.tensor([5.0, 7.0, -4.0])).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 7.0, 0.0]))


def test_upsampled_is_bilinear_then_rescaled_as_the_maps_were():
    maps = torch.tensor([[[0.0, 0.5], [0.25, 0.0]]], dtype=torch.float64)
    for how in ("max", "minmax"):
        h = Heatmaps(maps, None, None, torch.tensor([-1]), "x", "test", how)
        up = h.upsampled((4, 6))
        raw = F.interpolate(maps[:, None], size=(4, 6), mode="bilinear",
                            align_corners=False)[:, 0]
        lo = raw.min() if how == "minmax" else 0.0
        assert up.shape == (1, 4, 6)
        torch.testing.assert_close(up, (raw - lo) / (raw.max() - lo))
        assert float(up.max()) == 1.0  # 0.5 at the grid's corner cell becomes the maximum
    flat = Heatmaps(torch.zeros(1, 2, 2), None, None, torch.tensor([-1]), "x", "test")
    assert torch.equal(flat.upsampled((3, 3)), torch.zeros(1, 3, 3))  # zero stays zero


def test_bad_inputs():
    model = TinyGAP()
    with pytest.raises(NetscopeError, match=r"no layer named 'features\.9'.*Close matches"):
        A.grad_cam(model, image(), layer="features.9")
    with pytest.raises(NetscopeError, match="no spatial grid"):
        A.grad_cam(model, image(), layer="fc")
    with pytest.raises(NetscopeError, match="class index 7 is out of range: the model has 3"):
        A.grad_cam(model, image(), targets=7)
    with pytest.raises(NetscopeError, match="2 targets for a batch of 3"):
        A.grad_cam(model, image(3), targets=[0, 1])
    with pytest.raises(NetscopeError, match="normalize must be one of"):
        A.grad_cam(model, image(), normalize="softmax")
    with pytest.raises(NetscopeError, match=r"CAM needs layer 0 to give \(batch, 6, h, w\)"):
        A.cam(nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 6, 1), nn.AdaptiveAvgPool2d(1),
                            nn.Flatten(), nn.Linear(6, 2)).double(), image(), layer="0")


@pytest.mark.parametrize("shape", [(2, 6, 40), (2, 40, 6)])
def test_first_singular_projection_matches_svd(shape):
    m = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    expected = (m @ vh[:, 0, :, None])[..., 0]
    got = first_singular_projection(m)
    signs = torch.sign((got * expected).sum(1, keepdim=True))  # both signs are valid
    torch.testing.assert_close(got * signs, expected)


def test_smoothgrad_map_does_not_depend_on_batch_companions():
    """The noise SD follows each image's own range: a half-contrast image gets half the
    noise whether it is alone or beside a full-contrast one."""
    model = TinyGAP()
    full, half = image(1, size=6, seed=1), 0.5 * image(1, size=6, seed=2)
    alone = A.saliency(model, half, targets=1, samples=3, noise=0.2, seed=7).maps[0]
    for batch, i in ((torch.cat([full, half]), 1), (torch.cat([half, full]), 0)):
        got = A.saliency(model, batch, targets=1, samples=3, noise=0.2, seed=7).maps[i]
        torch.testing.assert_close(got, alone)


class OneChannel(nn.Module):
    """Activations A (fixed, one channel) and a linear score with hand-set gradient g."""

    def __init__(self, acts, g):
        super().__init__()
        self.acts = nn.Parameter(acts.view(1, 1, 2, 2), requires_grad=False)
        self.g = g.view(1, 1, 2, 2)
        self.layer = nn.Identity()

    def forward(self, x):
        a = self.layer(self.acts.expand(x.shape[0], -1, -1, -1) + 0 * x[:, :1, :2, :2])
        s = (a * self.g).sum((1, 2, 3))
        return torch.stack([s, -s], 1)


def test_gradcampp_warns_where_its_denominator_vanishes_and_offers_the_peers_eps():
    # sum(A) = -1.999 and g = 1 at one position: 2 + g * sum(A) = 1e-3
    acts = torch.tensor([1.0, -3.0, 0.001, 0.0], dtype=torch.float64)
    g = torch.tensor([1.0, 0.2, 0.0, 0.0], dtype=torch.float64)
    model, x = OneChannel(acts, g), torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    h = A.grad_cam(model, x, 0, layer="layer", variant="gradcam++", normalize="none")
    assert h.warnings and "unstable" in h.warnings[0] and "eps=1e-6" in h.warnings[0]
    # alpha = sum_ij g^2/(2g^2 + sum(A) g^3) relu(g): 1/(2 - 1.999) + 0.2/(2 - 0.3998)
    alpha = 1 / (2 - 1.999) + 0.2 / (2 + 0.2 * -1.999)
    np.testing.assert_allclose(h.maps[0].numpy(), np.maximum(alpha * acts.view(2, 2).numpy(), 0))
    peers = A.grad_cam(model, x, 0, layer="layer", variant="gradcam++", normalize="none", eps=1e-7)
    den = lambda gi: 2 * gi**2 + (-1.999) * gi**3 + 1e-7  # noqa: E731
    alpha_eps = 1.0 / den(1.0) + 0.2**2 / den(0.2) * 0.2
    expected = np.maximum(alpha_eps * acts.view(2, 2).numpy(), 0)
    np.testing.assert_allclose(peers.maps[0].numpy(), expected)
    assert not peers.warnings
    stable = A.grad_cam(TinyGAP(), image(1), 1, layer="features.3", variant="gradcam++")
    assert stable.warnings == []


def test_eigen_cam_centre_option_and_sign_point_at_the_strong_activations():
    # a bright object (strong, varied channels) on a weak uniform background
    torch.manual_seed(0)
    m = torch.full((1, 3, 4, 4), 0.2, dtype=torch.float64)
    m[0, :, 1:3, 1:3] = torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64).view(3, 1, 1)

    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Identity()

        def forward(self, x):
            return self.layer(m + 0 * x).mean((2, 3))

    for centre in (False, True):
        h = A.eigen_cam(Fixed(), torch.zeros(1, 3, 4, 4, dtype=torch.float64), layer="layer",
                        centre=centre)
        inside, outside = h.maps[0, 1:3, 1:3], h.maps[0, 0]
        assert torch.allclose(inside, torch.ones_like(inside))  # on the object, either way
        assert (outside == 0).all() if centre else (outside < 0.1).all()


class BNThenInplaceReLU(nn.Module):
    """conv -> BatchNorm -> ReLU(inplace): the ReLU overwrites the BN output in place."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU(inplace=True)
        self.fc = nn.Linear(4, 2)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
        self.double().eval()

    def forward(self, x):
        return self.fc(self.act(self.bn(self.conv(x))).mean((2, 3)))


def test_grad_cam_at_a_batch_norm_before_an_inplace_relu_uses_the_bn_output():
    """Two peers record the tensor after the in-place ReLU has overwritten it (no negative
    activations left); netscope must use the BN output itself. Guarded here."""
    model, x = BNThenInplaceReLU(), image(1, size=6, seed=9)
    with torch.no_grad():
        acts = model.bn(model.conv(x))
    assert (acts < 0).any()  # the case where the difference shows
    a = acts.clone().requires_grad_(True)
    score = model.fc(torch.relu(a).mean((2, 3)))[0, 1]
    (g,) = torch.autograd.grad(score, a)
    expected = torch.relu((g.mean((2, 3), keepdim=True) * acts).sum(1))
    got = A.grad_cam(model, x, 1, layer="bn", normalize="none").maps
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("name", ["gradcam", "saliency", "lrp", "integrated-gradients",
                                  "occlusion", "scorecam", "guided"])
def test_an_image_with_nan_is_refused_and_never_spoils_another(name):
    import torch

    from netscope.errors import NetscopeError
    from netscope.vision.methods.registry import explain

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 3)).eval()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    x[1, 0, 3, 3] = float("nan")
    with pytest.raises(NetscopeError, match="image 1 of the batch holds NaN"):
        explain(name, model, x, [0, 0])


def test_guided_backprop_equals_pytorch_grad_cam_where_installed():
    pgc = pytest.importorskip("pytorch_grad_cam", reason="pytorch-grad-cam is a peer")
    model, x = TinyGAP(dtype=torch.float32).eval(), image(2, dtype=torch.float32)
    ours = guided.guided_backprop(model, x, [1, 2])
    for i, c in enumerate((1, 2)):
        ref = pgc.GuidedBackpropReLUModel(model, device="cpu")(x[i:i + 1].clone(), c)
        np.testing.assert_allclose(ours[i].permute(1, 2, 0).numpy(), ref, atol=1e-6)
    assert not any(type(m).__name__.startswith("GuidedBackprop") for m in model.modules())
    out = guided.guided_grad_cam(model, x, [1, 2])  # one forward pass, two backward
    cam = A.grad_cam(model, x, [1, 2]).upsampled((x.shape[-2:]))
    torch.testing.assert_close(out.attributions, ours * cam[:, None])
