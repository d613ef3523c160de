"""Element-wise Grad-CAM, Eigen-Grad-CAM and KPCA-CAM: their formulas on a tiny model,
KPCA-CAM with a linear kernel as centred Eigen-CAM, and pytorch-grad-cam on the same layer
and inputs where it is installed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from netscope.errors import NetscopeError
from netscope.vision.methods.grad_cam_family import layer_gradients
from netscope.vision.methods.registry import explain
from tests.vision.tiny import TinyGAP, image

LAYER = "features.3"  # an 8x8 grid on 8x8 images: the peer's resize is the identity


def _scaled(m: torch.Tensor) -> torch.Tensor:
    m = F.relu(m)
    return m / m.flatten(1).amax(1).view(-1, 1, 1)


def test_elementwise_sums_each_channels_positive_share():
    model, x = TinyGAP(), image(2)
    A, g, _, _ = layer_gradients(model, x, LAYER, [1, 2])
    heat = explain("gradcam-elementwise", model, x, [1, 2], layer=LAYER)
    torch.testing.assert_close(heat.maps, _scaled(F.relu(g * A).sum(1)))


def test_eigengradcam_is_the_first_principal_direction_of_gradient_times_activation():
    model, x = TinyGAP(), image(2)
    A, g, _, _ = layer_gradients(model, x, LAYER, [0, 2])
    heat = explain("eigengradcam", model, x, [0, 2], layer=LAYER)
    for i in range(2):
        m = (g[i] * A[i]).flatten(1).T
        m = m - m.mean(0)
        v = torch.linalg.svd(m, full_matrices=False).Vh[0]
        proj = m @ v
        plain = (g[i] * A[i]).sum(0).flatten()
        if float(torch.corrcoef(torch.stack([proj, plain]))[0, 1]) < 0:
            proj = -proj  # oriented toward the score's first-order share of each place
        torch.testing.assert_close(heat.maps[i], _scaled(proj.view(1, 8, 8))[0])


def test_kpcacam_with_a_linear_kernel_is_centred_eigencam():
    model, x = TinyGAP(), image(2)
    kpca = explain("kpcacam", model, x, layer=LAYER, kernel="linear")
    eigen = explain("eigencam", model, x, layer=LAYER, centre=True)
    torch.testing.assert_close(kpca.maps, eigen.maps, rtol=1e-6, atol=1e-8)
    assert kpca.target is None  # class-agnostic


def test_bad_kernels_are_refused():
    with pytest.raises(NetscopeError, match="kernel must be one of sigmoid"):
        explain("kpcacam", TinyGAP(), image(1), kernel="laplace")


def test_equal_to_pytorch_grad_cam_where_installed():
    pgc = pytest.importorskip("pytorch_grad_cam", reason="pytorch-grad-cam is a peer")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, x = TinyGAP(dtype=torch.float32).eval(), image(8, dtype=torch.float32)
    targets, compared = [0, 1, 2] * 2 + [0, 1], []
    for ours, peer, settings in (("gradcam-elementwise", pgc.GradCAMElementWise, {}),
                                 ("eigengradcam", pgc.EigenGradCAM, {}),
                                 ("kpcacam", pgc.KPCA_CAM, {})):
        ref = peer(model, target_layers=[model.features[3]])(
            input_tensor=x.clone(), targets=[ClassifierOutputTarget(c) for c in targets])
        heat = explain(ours, model, x, targets, layer=LAYER, normalize="minmax", **settings)
        got = heat.maps.numpy()
        for i in range(8):
            if ours != "gradcam-elementwise" and np.corrcoef(got[i].ravel(),
                                                             ref[i].ravel())[0, 1] < 0:
                continue  # the peer left the projection's sign to the decomposition
            np.testing.assert_allclose(got[i], ref[i], atol=2e-5, err_msg=ours)
            compared.append(ours)
    assert len(set(compared)) == 3, compared  # each compared on at least one image


def test_shapleycam_of_a_logit_through_a_piecewise_linear_head_is_gradcam():
    model, x = TinyGAP(), image(2)
    shapley = explain("shapleycam", model, x, [0, 1], layer=LAYER, score="logit")
    torch.testing.assert_close(shapley.maps, explain("gradcam", model, x, [0, 1],
                                                     layer=LAYER).maps)


def test_shapleycam_weights_are_gradient_minus_half_the_hessian_times_activations():
    model, x = TinyGAP(), image(1)
    A, _, _, _ = layer_gradients(model, x, LAYER, [2])

    def rest(a):
        y = model.fc(model.pool(a).flatten(1))
        return y[0, 2] + torch.log_softmax(y, 1)[0, 2]

    g = torch.autograd.functional.jacobian(rest, A)
    _, hvp = torch.autograd.functional.hvp(rest, A, A)
    w = (g - 0.5 * hvp).mean((2, 3), keepdim=True)
    heat = explain("shapleycam", model, x, [2], layer=LAYER)
    torch.testing.assert_close(heat.maps, _scaled((w * A).sum(1)))
    assert hvp.abs().max() > 1e-6  # the softmax's curvature is there


def test_finercam_without_contrast_is_gradcam_and_names_the_neighbours():
    model, x = TinyGAP(), image(2)
    plain = explain("finercam", model, x, [0, 2], layer=LAYER, alpha=0.0, comparisons=1)
    torch.testing.assert_close(plain.maps, explain("gradcam", model, x, [0, 2],
                                                   layer=LAYER).maps)
    logits = model(x).detach()
    near = (logits - logits[[0, 1], [0, 2]][:, None]).abs()
    near[[0, 1], [0, 2]] = float("inf")
    assert plain.extras["neighbours"][:, 0].tolist() == near.argmin(1).tolist()
    clipped = explain("finercam", model, x, comparisons=5)  # 3 classes: 2 others
    assert clipped.extras["neighbours"].shape == (2, 2) and "compared with 2" in \
        clipped.warnings[0]


def test_second_order_and_contrast_cams_equal_pytorch_grad_cam_where_installed():
    pgc = pytest.importorskip("pytorch_grad_cam", reason="pytorch-grad-cam is a peer")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputReST

    model, x = TinyGAP(dtype=torch.float32).eval(), image(4, dtype=torch.float32)
    layer = [model.features[3]]
    ref = pgc.ShapleyCAM(model, target_layers=layer)(
        input_tensor=x.clone(), targets=[ClassifierOutputReST(c) for c in (0, 1, 2, 0)])
    got = explain("shapleycam", model, x, [0, 1, 2, 0], layer=LAYER, normalize="minmax")
    np.testing.assert_allclose(got.maps.numpy(), ref, atol=2e-5)
    ref = pgc.FinerCAM(model, target_layers=layer)(input_tensor=x.clone(),
                                                   comparison_categories=[1, 2])
    got = explain("finercam", model, x, layer=LAYER, comparisons=2, normalize="minmax")
    np.testing.assert_allclose(got.maps.numpy(), ref, atol=2e-5)


def test_sscam_without_noise_and_iscam_with_one_step_are_scorecam():
    model, x = TinyGAP(), image(2)
    score = explain("scorecam", model, x, [0, 2], layer=LAYER).maps
    for name, settings in (("sscam", {"mask_noise": 0.0, "samples": 3}),
                           ("iscam", {"samples": 1})):
        torch.testing.assert_close(explain(name, model, x, [0, 2], layer=LAYER,
                                           **settings).maps, score)


def test_iscam_averages_the_scores_of_the_integrated_masks():
    model, x = TinyGAP(), image(1)
    A, _, _, _ = layer_gradients(model, x, LAYER, [1])
    steps = 3
    scales = torch.cumsum(torch.arange(1, steps + 1, dtype=torch.float64) / steps, 0)
    w = torch.zeros(A.shape[1], dtype=torch.float64)
    for k in range(A.shape[1]):
        m = A[0, k] - A[0, k].min()
        m = m / m.max() if m.max() > 0 else m
        with torch.no_grad():
            w[k] = torch.stack([torch.softmax(model(x * c * m), 1)[0, 1]
                                for c in scales]).mean()
    heat = explain("iscam", model, x, [1], layer=LAYER, samples=steps)
    torch.testing.assert_close(heat.maps, _scaled((w.view(1, -1, 1, 1) * A).sum(1)))


def test_smooth_gradcampp_averages_the_derivatives_over_noisy_copies():
    from netscope.vision.methods.grad_cam_family import pp_weights
    from netscope.vision.methods.noise_tunnel import noise_draws

    model, x = TinyGAP(), image(2)
    A, _, _, _ = layer_gradients(model, x, LAYER, [0, 1])
    gs = [layer_gradients(model, x + e, LAYER, [0, 1])[1]
          for e in noise_draws(x, 3, 0.1, 4)]
    g = torch.stack(gs)
    w = pp_weights(A, g.mean(0), (g ** 2).mean(0), (g ** 3).mean(0))
    heat = explain("smoothgradcam++", model, x, [0, 1], layer=LAYER, samples=3, noise=0.1,
                   seed=4)
    torch.testing.assert_close(heat.maps, _scaled((w * A).sum(1)))
    tiny = explain("smoothgradcam++", model, x, [0, 1], layer=LAYER, samples=1, noise=1e-9)
    torch.testing.assert_close(tiny.maps, explain("gradcam++", model, x, [0, 1],
                                                  layer=LAYER).maps, rtol=1e-5, atol=1e-6)
