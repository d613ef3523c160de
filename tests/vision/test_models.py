"""Model loading: the offline default, TorchScript, module:function, and safe failure."""

import pytest
import torch

from netscope.errors import NetscopeError
from netscope.vision.classes import imagenet_classes, resolve_class
from netscope.vision.models import load_model
from tests.vision.tiny import TinyGAP


def make_tiny():
    return TinyGAP(dtype=torch.float32)


def test_torchscript_round_trip(tmp_path):
    model = make_tiny().eval()
    with pytest.warns(DeprecationWarning):
        torch.jit.script(model).save(str(tmp_path / "m.pt"))
    loaded = load_model(str(tmp_path / "m.pt"))
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(loaded.model(x), model(x))
    assert loaded.class_names is None


def test_pickled_model_file_is_refused(tmp_path):
    torch.save(make_tiny(), tmp_path / "pickled.pt")  # a full pickle, not TorchScript
    with pytest.raises(NetscopeError, match="not a TorchScript model that can be loaded safely"):
        load_model(str(tmp_path / "pickled.pt"))


def test_factory():
    loaded = load_model("tests.vision.test_models:make_tiny")
    assert isinstance(loaded.model, TinyGAP) and not loaded.model.training


def test_unknown_specs(tmp_path):
    with pytest.raises(NetscopeError, match="cannot import"):
        load_model("tests.vision.test_models:nothing_here")
    with pytest.raises(NetscopeError, match="model file not found"):
        load_model(str(tmp_path / "missing.pt"))
    with pytest.raises(NetscopeError, match="unknown model 'resnet'"):
        load_model("resnet")


def test_class_names():
    names = imagenet_classes()
    assert len(names) == 1000 and names[285] == "Egyptian cat" and names[130] == "flamingo"
    assert resolve_class("flamingo", names, 1000) == 130
    assert resolve_class("Egyptian_Cat", names, 1000) == 285
    assert resolve_class("42", names, 1000) == 42
    with pytest.raises(NetscopeError, match="Did you mean: 'flamingo'"):
        resolve_class("flamingoo", names, 1000)
    with pytest.raises(NetscopeError, match="out of range: the model has 1000 outputs"):
        resolve_class(1000, names, 1000)
    with pytest.raises(NetscopeError, match="no class names"):
        resolve_class("cat", None, 10)


def test_optional_extras_missing_say_how_to_install():
    for spec, extra in (("torchvision:resnet50", "torchvision"), ("timm:resnet18", "timm")):
        try:
            __import__(extra)
        except ImportError:
            with pytest.raises(NetscopeError, match=rf"pip install 'netscope\[{extra}\]'"):
                load_model(spec)
