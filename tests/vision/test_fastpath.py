"""The traced, folded "model up to a layer" computes what the hooks record."""

import pytest
import torch
from torch import nn

from netscope.vision.core.fastpath import truncated
from netscope.vision.features.activations import activations
from netscope.vision.features.ascent import AscentConfig, visualize_filters
from netscope.vision.models.zoo import Preprocess, load_model
from tests.vision.tiny import TinyGAP, image


class ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.pad = nn.ZeroPad2d(1)
        self.conv = nn.Conv2d(3, 6, 3)
        self.bn = nn.BatchNorm2d(6)
        self.act = nn.ReLU6()
        self.head = nn.Conv2d(6, 4, 1, bias=False)
        with torch.no_grad():  # running statistics that are not the identity
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.5, 0.5)
        self.double()

    def forward(self, x):
        return self.head(self.act(self.bn(self.conv(self.pad(x)))))


def _kinds(gm):
    return {type(gm.get_submodule(n.target)).__name__ for n in gm.graph.nodes
            if n.op == "call_module"}


def test_folds_padding_and_batchnorm_exactly():
    model = ConvBN().eval()
    gm = truncated(model, "head")
    x = image(2, size=7)
    torch.testing.assert_close(gm(x), model(x))
    assert _kinds(gm) == {"ReLU6", "Conv2d"}  # pad and batch norm are gone


def test_cut_after_the_layer():
    model, x = TinyGAP(), image(2)
    gm = truncated(model, "features.2")
    torch.testing.assert_close(gm(x), activations(model, x, ["features.2"])["features.2"])


def test_lite0_layers_match_the_hooks():
    lm = load_model()
    x = torch.randn(2, 3, 96, 96)
    for layer in ("_blocks.2", "_blocks.8"):
        gm = truncated(lm.model, layer)
        ref = activations(lm.model, x, [layer])[layer]
        torch.testing.assert_close(gm(x), ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
        assert "BatchNorm2d" not in _kinds(gm)


def test_user_model_untouched_and_untraceable_models_fall_back():
    model = TinyGAP()
    before = [p.clone() for p in model.parameters()]
    truncated(model, "features.0")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1)

        def forward(self, x):
            return self.conv(x) if x.sum() > 0 else -self.conv(x)

    assert truncated(Branchy(), "conv") is None
    res = visualize_filters(Branchy(), "conv", [0, 1], Preprocess(8),
                            AscentConfig(steps=3, size=8))
    assert res.images.shape == (2, 3, 8, 8)


@pytest.mark.parametrize("fast", [True, False])
def test_fast_and_hook_paths_agree(fast):
    model = TinyGAP(dtype=torch.float32)
    cfg = AscentConfig(steps=5, size=16)
    a = visualize_filters(model, "features.2", [0, 2], Preprocess(16), cfg, fast=fast)
    b = visualize_filters(model, "features.2", [0, 2], Preprocess(16), cfg, fast=not fast)
    torch.testing.assert_close(a.images, b.images, atol=1e-4, rtol=1e-4)


def test_cache_follows_weight_changes():
    model, x = TinyGAP(), image()
    first = truncated(model, "features.2")
    assert truncated(model, "features.2") is first  # remembered
    with torch.no_grad():
        model.features[2].weight.mul_(2)  # as training would
    again = truncated(model, "features.2")
    assert again is not first
    torch.testing.assert_close(again(x), activations(model, x, ["features.2"])["features.2"])


def test_whole_model_simplified():
    lm = load_model()
    x = torch.randn(2, 3, 96, 96)
    gm = truncated(lm.model, None)
    with torch.no_grad():
        ref = lm.model(x)
    torch.testing.assert_close(gm(x), ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    assert "BatchNorm2d" not in _kinds(gm)
