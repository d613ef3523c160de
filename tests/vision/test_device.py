"""Any device: devices are checked before work starts, and every tensor netscope makes
follows the input's device and dtype. Without a GPU here, a float64 model exposes the same
mistakes: a constant made with the defaults (float32, CPU) is caught when it is created."""

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from netscope import vision as A
from netscope.cli import main
from netscope.errors import NetscopeError
from netscope.vision.core.device import model_device, model_dtype, resolve_device, to_device
from netscope.vision.features.activations import activations, list_layers
from netscope.vision.features.ascent import AscentConfig, visualize_classes, visualize_filters
from netscope.vision.methods.forward_cams import ablation_cam, score_cam
from netscope.vision.methods.guided import guided_grad_cam
from netscope.vision.methods.occlusion_map import occlusion
from netscope.vision.methods.path_integral import integrated_gradients
from netscope.vision.methods.rollout import attention_rollout
from netscope.vision.metrics.faithfulness import confidence_change, deletion, insertion
from netscope.vision.metrics.road import road
from netscope.vision.metrics.sanity import cascading_randomization
from netscope.vision.models.zoo import LoadedModel, Preprocess
from tests.vision.tiny import TinyGAP
from tests.vision.tiny_transformers import TinyViT

FACTORIES = {torch.zeros, torch.ones, torch.full, torch.empty, torch.tensor, torch.as_tensor,
             torch.arange, torch.linspace, torch.rand, torch.randn, torch.eye, torch.from_numpy}


class Made(TorchFunctionMode):
    """Records the floating tensors that factory functions return. Seeded noise (a call
    with a ``generator``) is drawn in float32 on the CPU on purpose, so a picture's start is
    the same in every dtype and on every device, and then moved; it is not counted."""

    def __init__(self) -> None:
        super().__init__()
        self.made: list[tuple[str, torch.dtype]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in FACTORIES and isinstance(out, torch.Tensor) and out.is_floating_point() \
                and out.numel() > 1 and "generator" not in (kwargs or {}):
            self.made.append((func.__name__, out.dtype))
        return out


def _float32_made(run) -> list[str]:
    with Made() as mode:
        run()
    return [name for name, dtype in mode.made if dtype == torch.float32]


PRE = Preprocess(16)
X = torch.rand(2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
TECHNIQUES = {
    "gradcam": lambda m: A.grad_cam(m, X),
    "gradcam++": lambda m: A.grad_cam(m, X, variant="gradcam++"),
    "cam": lambda m: A.cam(m, X),
    "eigencam": lambda m: A.eigen_cam(m, X),
    "scorecam": lambda m: score_cam(m, X),
    "ablationcam": lambda m: ablation_cam(m, X),
    "saliency": lambda m: A.saliency(m, X),
    "smoothgrad": lambda m: A.saliency(m, X, samples=2),
    "integrated-gradients": lambda m: integrated_gradients(m, X, steps=2, baseline="blur"),
    "occlusion": lambda m: occlusion(m, X, window=8, stride=8, baseline="mean"),
    "guided": lambda m: guided_grad_cam(m, X),
    "deletion": lambda m: deletion(m, X, A.grad_cam(m, X), steps=3),
    "insertion": lambda m: insertion(m, X, A.grad_cam(m, X), steps=3),
    "confidence": lambda m: confidence_change(m, X, A.grad_cam(m, X), pre=PRE),
    "road": lambda m: road(m, X, A.grad_cam(m, X), percentages=(50,)),
    "sanity": lambda m: cascading_randomization(m, X, lambda mm, xx, t: A.grad_cam(mm, xx, t).maps,
                                                A.grad_cam(m, X).classes, checkpoints=1),
    "activations": lambda m: activations(m, X),
    "layers": lambda m: list_layers(m, 16),
    "filters": lambda m: visualize_filters(m, "features.2", [0, 1], PRE,
                                           AscentConfig(size=16, steps=2, jitter=2, rotate=5,
                                                        scale_jitter=0.1, blur_every=1)),
    "classes-fourier": lambda m: visualize_classes(m, [0, 2], PRE,
                                                   AscentConfig(size=16, steps=2,
                                                                param="fourier")),
}


@pytest.mark.parametrize("name", list(TECHNIQUES))
def test_every_technique_follows_the_model_dtype(name):
    model = TinyGAP(dtype=torch.float64).eval()
    made = _float32_made(lambda: TECHNIQUES[name](model))
    assert made == [], f"{name} made float32 tensors with {made}"


def test_results_keep_the_dtype():
    assert _float32_made(lambda: torch.zeros(3) + X.sum()) == ["zeros"]  # the audit works
    model = TinyGAP(dtype=torch.float64).eval()
    for heat in (A.grad_cam(model, X), score_cam(model, X), A.saliency(model, X),
                 occlusion(model, X, window=8, stride=8)):
        assert heat.maps.dtype == torch.float64
    vit = TinyViT(size=16).double().eval()
    x = X.clone()
    assert _float32_made(lambda: attention_rollout(vit, x)) == []
    assert A.grad_cam(vit, x).maps.dtype == torch.float64


def test_preprocessing_follows_the_model():
    lm = LoadedModel("tiny", TinyGAP(dtype=torch.float64), Preprocess(16), None)
    placed = to_device(lm, None)
    x = placed.preprocess.tensor(torch.rand(20, 24, 3).numpy())
    assert x.dtype == torch.float64 and x.device == model_device(placed.model)
    half = to_device(LoadedModel("h", TinyGAP(dtype=torch.bfloat16), Preprocess(16), None),
                     "cpu")
    assert half.preprocess.tensor(torch.rand(20, 24, 3).numpy()).dtype == torch.bfloat16
    assert model_dtype(nn.Sequential(nn.ReLU())) == torch.float32
    assert model_device(nn.Sequential(nn.ReLU())) == torch.device("cpu")


def test_devices_are_checked():
    assert resolve_device(None, TinyGAP()) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(NetscopeError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(NetscopeError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(NetscopeError, match="'cuda' is not available.*--device cpu"):
            resolve_device("cuda")
    else:
        with pytest.raises(NetscopeError, match="does not exist"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    if not (torch.backends.mps.is_available()):
        with pytest.raises(NetscopeError, match="'mps' is not available"):
            resolve_device("mps")


def test_command_line_device(tmp_path, capsys):
    assert main(["vision", "predict", "chelsea", "--device", "cpu", "--top", "1"]) == 0
    assert "Egyptian cat" in capsys.readouterr().out
    assert main(["vision", "gradcam", "chelsea", "--device", "quantum", "--out",
                 str(tmp_path / "o")]) == 2
    assert "unknown device 'quantum'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_the_gpu():
    model = TinyGAP(dtype=torch.float32).cuda().eval()
    x = X.float().cuda()
    for name, run in TECHNIQUES.items():
        if name in ("layers", "sanity", "filters", "classes-fourier"):
            continue
        out = run(model) if name not in ("confidence",) else None
        maps = getattr(out, "maps", None)
        if isinstance(maps, torch.Tensor):
            assert maps.device.type == "cuda", name
    heat = A.grad_cam(model, x)
    assert heat.maps.device.type == "cuda"
