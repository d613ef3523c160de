"""Model loading: the offline default, TorchScript, module:function, and safe failure."""

import pytest
import torch

from netscope.errors import NetscopeError
from netscope.vision.models.classes import imagenet_classes, resolve_class
from netscope.vision.models.zoo import load_model
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


def test_torchvision_and_timm_wrappers_with_stand_in_modules(monkeypatch):
    """The real packages cannot be installed beside torch 2.13.0 CPU here; stand-ins check
    what netscope asks of them and what it builds from their answers."""
    import sys
    import types

    calls = {}

    def get_model(name, weights):
        calls["torchvision"] = (name, weights)
        return make_tiny().train()

    tv = types.ModuleType("torchvision")
    tv.models = types.SimpleNamespace(get_model=get_model)
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    loaded = load_model("torchvision:resnet50")
    assert calls["torchvision"] == ("resnet50", "DEFAULT")
    assert not loaded.model.training and len(loaded.class_names) == 1000
    assert loaded.preprocess.mean == (0.485, 0.456, 0.406)

    def create_model(name, pretrained):
        calls["timm"] = (name, pretrained)
        model = make_tiny()
        model.pretrained_cfg = {"input_size": (3, 256, 256), "mean": (0.5, 0.5, 0.5),
                                "std": (0.25, 0.25, 0.25)}
        model.num_classes = 3
        return model

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    loaded = load_model("timm:tiny_net")
    assert calls["timm"] == ("tiny_net", True)
    assert loaded.preprocess.size == 256 and loaded.preprocess.std == (0.25, 0.25, 0.25)
    assert loaded.class_names is None  # not an ImageNet head

    def failing(name, weights):
        raise RuntimeError("no network")

    tv.models = types.SimpleNamespace(get_model=failing)
    with pytest.raises(NetscopeError, match="torchvision:resnet50: cannot load .no network"):
        load_model("torchvision:resnet50")


@pytest.mark.parametrize("body, said", [
    ("raise RuntimeError('boom at import')", "importing bad_mod_rt raised RuntimeError: boom"),
    ("def f(:\n", "importing bad_mod_syn raised SyntaxError: invalid syntax"),
    ("import sys\nsys.exit(3)", "importing bad_mod_exit called sys.exit(3)"),
    ("import sys\ndef make():\n    sys.exit(4)", "make() called sys.exit(4) instead of"),
])
def test_a_failing_user_module_is_one_line_naming_it(tmp_path, monkeypatch, capsys, body,
                                                      said):
    """Whatever the user's module does on import or in its factory (an exception other
    than ImportError, a syntax error, sys.exit), the command ends with one line naming the
    module and the error, rc 2."""
    from netscope.cli import main

    name = said.split()[1] if said.startswith("importing") else "bad_mod_call"
    (tmp_path / f"{name}.py").write_text(body + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["vision", "gradcam", "chelsea", "--model", f"{name}:make", "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


@pytest.mark.parametrize("command", [
    ["gradcam", "chelsea"], ["activations", "chelsea"], ["filters", "--layer", "detect"],
    ["saliency", "chelsea", "--method", "lrp"], ["concepts", "chelsea", "--layer", "detect"],
])
def test_a_torchscript_model_is_refused_by_name_where_a_layer_is_read(tmp_path, capsys,
                                                                      command):
    """TorchScript modules cannot be hooked (register_forward_hook raised from deep inside
    PyTorch); every command that reads a layer says so and what works instead."""
    from netscope.cli import main
    from tests.vision import tiny_units as T

    path = tmp_path / "t.pt"
    torch.jit.script(T.detector()).save(str(path))
    assert main(["vision", *command, "--model", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "a TorchScript model cannot be hooked" in err and "saliency, SmoothGrad" in err


def test_a_torchscript_model_takes_the_methods_that_need_no_layer(tmp_path):
    from netscope.cli import main
    from tests.vision import tiny_units as T

    path = tmp_path / "t.pt"
    torch.jit.script(T.detector()).save(str(path))
    for method in ("saliency", "integrated-gradients", "occlusion"):
        assert main(["vision", "saliency", "chelsea", "--method", method, "--model", str(path),
                     "--out", str(tmp_path / "o")]) == 0
    assert len(list((tmp_path / "o").glob("*.png"))) == 3
