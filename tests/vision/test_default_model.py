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
    # the 224x224 centre crop of chelsea is the cat's face; "Egyptian cat" peaks on the
    # left eye and cheek: the 84x84 box (14% of the image) from the eye (about row 80,
    # column 70) down to the whisker pads (checked on the overlay)
    assert int(heat.classes[0]) == 285
    assert 56 <= row <= 140 and 28 <= col <= 112, (row, col)
    assert up.max() == pytest.approx(1.0)
    assert up[56:140, 28:112].mean() > 2 * up[168:, 168:].mean()  # not the lower right fur


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
    m = lite0.model  # the values: the network run by hand up to those blocks
    with torch.no_grad():
        h = m._swish(m._bn0(m._conv_stem(chelsea[0])))
        outs = []
        for block in m._blocks:
            h = block(h)
            outs.append(h)
    torch.testing.assert_close(acts["_blocks.0"], outs[0])
    torch.testing.assert_close(acts["_blocks.15"], outs[15])
