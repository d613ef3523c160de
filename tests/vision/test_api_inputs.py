"""The Python API's entry checks: misuse gets one sentence naming the fix, never a PyTorch
error from inside (each case raised one before); casts whose meaning is clear are made
and said."""

import warnings

import numpy as np
import pytest
import torch

from netscope.errors import NetscopeError
from netscope.vision import grad_cam, lrp
from netscope.vision.methods.gradients import saliency
from tests.vision import tiny_units as T

X = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("method", [grad_cam, lrp, saliency])
@pytest.mark.parametrize("x, said", [
    (X[0], r"shape \(3, 32, 32\), one image without its batch dimension; pass x\[None\]"),
    (X.permute(0, 2, 3, 1), r"shape \(2, 32, 32, 3\), channels last; pass x.permute"),
    ((X * 255).to(torch.uint8), "torch.uint8 pixels, whose scale the method cannot know"),
    (X[:, :2], r"must be a batch \(N, C, H, W\) with C = 3"),
    ("chelsea.png", "the images must be a tensor"),
])
def test_misused_images_get_one_sentence(method, x, said):
    with pytest.raises(NetscopeError, match=said):
        method(T.detector(), x)


def test_other_float_types_devices_and_arrays_are_taken_and_said():
    model = T.detector()
    want = grad_cam(model, X).maps
    for x in (X.double(), X.half().float().double()):
        with pytest.warns(UserWarning, match="the images are torch.float64, the model "
                                             "torch.float32; cast"):
            got = grad_cam(model, x)
        torch.testing.assert_close(got.maps, want, rtol=1e-3, atol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NumPy float32 batch needs no word
        torch.testing.assert_close(grad_cam(model, X.numpy()).maps, want)
    with pytest.warns(UserWarning, match="cast"):
        torch.testing.assert_close(lrp(model, X.double(), [0, 0]).maps,
                                   lrp(model, X, [0, 0]).maps, rtol=1e-4, atol=1e-5)


def test_a_layer_may_be_given_as_the_module_itself():
    model = T.detector()
    torch.testing.assert_close(grad_cam(model, X, layer=model.spread).maps,
                               grad_cam(model, X, layer="spread").maps)
    with pytest.raises(NetscopeError, match=r"the layer given \(Conv2d\) is not a module of "
                                            r"this model"):
        grad_cam(model, X, layer=torch.nn.Conv2d(3, 3, 1))


def test_a_model_on_the_meta_device_is_refused():
    with torch.device("meta"):
        model = T.Detector()
    with pytest.raises(NetscopeError, match="weights are on the meta device"):
        grad_cam(model, X)


def test_show_takes_paths_and_grey_pictures_and_refuses_none(tmp_path):
    from PIL import Image

    heat = grad_cam(T.detector(), X[:1])
    rgb = np.random.default_rng(0).random((32, 32, 3))
    Image.fromarray((rgb * 255).round().astype(np.uint8)).save(tmp_path / "p.png")
    from_path = heat.show(str(tmp_path / "p.png"))._repr_png_()
    assert from_path == heat.show(np.round(rgb * 255) / 255)._repr_png_()
    grey = rgb.mean(-1)
    assert heat.show(grey)._repr_png_() == heat.show(np.stack([grey] * 3, -1))._repr_png_()
    with pytest.raises(NetscopeError, match="picture 0 is None"):
        heat.show(None)
    with pytest.raises(NetscopeError, match="no such image file"):
        heat.show(str(tmp_path / "missing.png"))
