"""The offline EfficientNet-Lite0: it sees the cat, and looks at it."""

import numpy as np
import pytest
import torch

from netscope import vision as A
from netscope.vision.features.activations import activations, conv_stages, list_layers
from netscope.vision.models.images import sample_image
from netscope.vision.models.zoo import load_model


@pytest.fixture(scope="module")
def lite0():
    return load_model()


@pytest.fixture(scope="module")
def chelsea(lite0):
    img = sample_image("chelsea")
    return lite0.preprocess.tensor(img), lite0.preprocess.image(img)


def test_chelsea_is_a_cat(lite0, chelsea):
    top = A.predict(lite0.model, chelsea[0], 5, lite0.class_names)[0]
    assert top[0][1] in {"Egyptian cat", "tabby", "tiger cat"}
    assert abs(sum(p for *_, p in top) - 1) < 0.2


def test_grad_cam_peak_on_the_cat(lite0, chelsea):
    heat = A.grad_cam(lite0.model, chelsea[0])
    up = heat.upsampled((224, 224))[0].numpy()
    row, col = np.unravel_index(up.argmax(), up.shape)
    # the cat's head and chest in the 224x224 centre crop (checked by eye on the overlay)
    assert 40 <= row <= 224 and 10 <= col <= 200
    assert up.max() == pytest.approx(1.0)


def test_cam_equals_grad_cam_on_lite0(lite0, chelsea):
    c = A.cam(lite0.model, chelsea[0])
    g = A.grad_cam(lite0.model, chelsea[0])
    torch.testing.assert_close(c.maps, g.maps, atol=1e-5, rtol=1e-5)


def test_layers_and_stages(lite0):
    layers = {info.name: info for info in list_layers(lite0.model)}
    assert layers["_conv_stem"].shape == (1, 32, 112, 112)
    assert layers["_swish"].calls == 2  # the shared activation module runs twice
    stages = conv_stages(lite0.model)
    assert stages[0] == "_conv_stem" and "_blocks.15" in stages


def test_activation_shapes(lite0, chelsea):
    acts = activations(lite0.model, chelsea[0], ["_blocks.0", "_blocks.15"])
    assert acts["_blocks.0"].shape == (1, 16, 112, 112)
    assert acts["_blocks.15"].shape == (1, 320, 7, 7)
