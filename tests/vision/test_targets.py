"""Any target, not only a class index: functions of the output, segmentation masks,
detector boxes, regression outputs, and models that return dicts or tuples."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netscope import vision as A
from netscope.errors import NetscopeError
from netscope.vision.core.targets import (
    Classes,
    DetectorBox,
    Regression,
    ScoreFn,
    SegmentationMask,
    box_iou,
    resolve,
)
from netscope.vision.methods.forward_cams import ablation_cam, score_cam
from netscope.vision.methods.occlusion_map import occlusion
from netscope.vision.methods.path_integral import integrated_gradients
from netscope.vision.metrics.faithfulness import deletion, insertion

X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


class TinySeg(nn.Module):
    """A fully convolutional segmenter returning {"out": (N, 3, 16, 16), "aux": ...}, as
    torchvision's segmentation models do."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.classifier = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        f = self.body(x)
        return {"out": self.classifier(f), "aux": f.mean((2, 3))}


class Linear(nn.Module):
    """y = <w_k, x> for K outputs: the input gradient of output k is exactly w_k."""

    def __init__(self, outputs: int = 3) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)  # a grid for CAM methods
        self.w = nn.Parameter(torch.randn(outputs, 3, 16, 16))
        self.outputs = outputs

    def forward(self, x):
        y = torch.einsum("nchw,kchw->nk", x + 0 * self.conv(x).sum(1, keepdim=True), self.w)
        return y[:, 0] if self.outputs == 1 else y


MASK = torch.zeros(16, 16)
MASK[4:10, 2:12] = 1


def test_segmentation_mask_target_is_the_masked_logit_sum():
    model = TinySeg().eval()
    target = SegmentationMask(1, MASK, key="out")
    with torch.no_grad():
        out = model(X)
    torch.testing.assert_close(resolve(out, target).score(out),
                               (out["out"][:, 1] * MASK).sum((1, 2)))
    heat = A.grad_cam(model, X, target, layer="body.2", normalize="none")
    by_fn = A.grad_cam(model, X, lambda o: (o["out"][:, 1] * MASK).sum((1, 2)), layer="body.2",
                       normalize="none")
    torch.testing.assert_close(heat.maps, by_fn.maps)
    assert heat.maps.abs().sum() > 0 and heat.classes.tolist() == [1, 1]
    # saliency is the input gradient of exactly that score
    xi = X.clone().requires_grad_(True)
    (g,) = torch.autograd.grad((model(xi)["out"][:, 1] * MASK).sum(), xi)
    sal = A.saliency(model, X, target)
    torch.testing.assert_close(sal.maps, A.normalize_maps(g.abs().amax(1)))


def test_per_image_masks_and_perturbation_methods():
    model = TinySeg().eval()
    masks = torch.stack([MASK, 1 - MASK])
    target = SegmentationMask(2, masks, key="out")
    with torch.no_grad():
        out = model(X)
    torch.testing.assert_close(resolve(out, target).score(out),
                               (out["out"][:, 2] * masks).sum((1, 2)))
    for heat in (score_cam(model, X, target, layer="body.2"),
                 ablation_cam(model, X, target, layer="body.2"),
                 occlusion(model, X, target, window=4, stride=4),
                 integrated_gradients(model, X, target, steps=4)):
        assert heat.maps.shape[0] == 2 and torch.isfinite(heat.maps).all()
    # the metrics score the masked sum itself: deletion starts at the full image's score
    heat = A.grad_cam(model, X, target, layer="body.2")
    curve = deletion(model, X, heat, steps=4, baseline="zeros")
    torch.testing.assert_close(curve.scores[:, 0], (out["out"][:, 2] * masks).sum((1, 2)))
    with torch.no_grad():
        empty = model(torch.zeros_like(X))
    torch.testing.assert_close(curve.scores[:, -1], (empty["out"][:, 2] * masks).sum((1, 2)))
    assert insertion(model, X, heat, steps=4, start="zeros").scores.shape == (2, 5)


def test_regression_targets_by_hand():
    single, multi = Linear(1).eval(), Linear(3).eval()
    sal = A.saliency(single, X, Regression())
    torch.testing.assert_close(sal.maps, A.normalize_maps(single.w[0].detach().abs()
                                                          .amax(0).expand(2, 16, 16)))
    ig = integrated_gradients(multi, X, Regression(index=2), steps=3)
    # linear model: IG from zeros is exactly x * w (any number of steps)
    torch.testing.assert_close(ig.attributions, X * multi.w[2].detach(), rtol=1e-4, atol=1e-5)
    assert ig.extras["completeness_error"].max() < 1e-4 and ig.classes.tolist() == [-1, -1]
    heat = A.grad_cam(multi, X, Regression(index=1), layer="conv")
    assert heat.maps.shape == (2, 16, 16)
    with pytest.raises(NetscopeError, match="has 3 outputs; name the one"):
        A.saliency(multi, X, Regression())
    with pytest.raises(NetscopeError, match="output 5 does not exist"):
        A.saliency(multi, X, Regression(index=5))


class TinyDetector(nn.Module):
    """Two fixed boxes per image; their scores depend on the pixels inside them."""

    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0], [8.0, 8.0, 16.0, 16.0]])

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x):
        f = self.conv(x)[:, 0]
        out = []
        for img in f:
            scores = torch.stack([img[:8, :8].mean(), img[8:, 8:].mean()]).sigmoid()
            out.append({"boxes": self.boxes, "labels": torch.tensor([3, 5]), "scores": scores})
        return out


def test_detector_box_target():
    torch.manual_seed(2)
    model = TinyDetector().eval()
    target = DetectorBox([1.0, 0.0, 8.0, 9.0], class_index=3)
    with torch.no_grad():
        out = model(X)
    torch.testing.assert_close(resolve(out, target).score(out),
                               torch.stack([d["scores"][0] for d in out]))
    sal = A.saliency(model, X, target)
    assert sal.maps[:, :9, :9].sum() > 0 and sal.maps[:, 10:, 10:].sum() == 0
    # right place, wrong class: nothing matches, the score is 0 and the map empty
    miss = A.saliency(model, X, DetectorBox([1.0, 0.0, 8.0, 9.0], class_index=5))
    assert miss.maps.abs().sum() == 0
    assert box_iou(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 1, 3, 3]])).item() \
        == pytest.approx(1 / 7)
    with pytest.raises(NetscopeError, match="needs a detector's output"):
        A.saliency(TinySeg().eval(), X, DetectorBox([0, 0, 1, 1], 1, key="out"))


def test_output_keys_and_bad_targets():
    model = TinySeg().eval()
    with pytest.raises(NetscopeError, match=r"dict with keys \['aux', 'out'\]; name the one"):
        A.grad_cam(model, X, SegmentationMask(1, MASK), layer="body.2")
    with pytest.raises(NetscopeError, match="has no key 'logits'; it has"):
        A.grad_cam(model, X, SegmentationMask(1, MASK, key="logits"), layer="body.2")
    with pytest.raises(NetscopeError, match="the mask has shape .8, 8., but the segmentation "
                                            "output is 16x16"):
        A.grad_cam(model, X, SegmentationMask(1, torch.ones(8, 8), key="out"), layer="body.2")
    with pytest.raises(NetscopeError, match="class 7 is out of range"):
        A.grad_cam(model, X, SegmentationMask(7, MASK, key="out"), layer="body.2")
    with pytest.raises(NetscopeError, match=r"must give one score per image, shape \(2,\); it "
                                            r"gave \(2, 16, 16\)"):
        A.grad_cam(model, X, lambda o: o["out"][:, 1], layer="body.2")
    with pytest.raises(NetscopeError, match="the target function raised KeyError"):
        A.saliency(model, X, ScoreFn(lambda o: o["nope"]))
    with pytest.raises(NetscopeError, match="a class target needs class scores"):
        A.grad_cam(model, X, Classes(1, key="out"), layer="body.2")  # a class on a segmentation map
    with pytest.raises(NetscopeError, match="CAM reads class weights"):
        A.cam(Linear(3).eval(), X, Regression(index=0), layer="conv")
    tuple_model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(5))
    tuple_model(X)
    wrapped = _Tuple(tuple_model).eval()
    heat = A.grad_cam(wrapped, X, ScoreFn(lambda o: o[:, 2], key=0), layer="net.0")
    plain = A.grad_cam(tuple_model.eval(), X, 2, layer="0")
    torch.testing.assert_close(heat.maps, plain.maps)


class _Tuple(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        y = self.net(x)
        return y, F.relu(y)


def test_output_key_on_the_command_line(tmp_path, capsys):
    from netscope.cli import main

    model = "tests.vision.tiny:tiny_dict"
    assert main(["vision", "gradcam", "chelsea", "--model", model, "--output-key", "logits",
                 "--out", str(tmp_path)]) == 0
    assert main(["vision", "predict", "chelsea", "--model", model, "--output-key",
                 "logits"]) == 0
    assert "chelsea" in capsys.readouterr().out
    assert main(["vision", "gradcam", "chelsea", "--model", model, "--out",
                 str(tmp_path / "auto")]) == 0  # 'logits' is read as Hugging Face's are
    assert sorted(p.name for p in (tmp_path / "auto").iterdir()) == \
        sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert main(["vision", "gradcam", "chelsea", "--model", "tests.vision.tiny:tiny_dict_scores",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "dict with keys ['features', 'scores']; name the one to explain" in err
    assert "--output-key" in err and "Traceback" not in err
    assert main(["vision", "gradcam", "chelsea", "--model", model, "--output-key", "scores",
                 "--out", str(tmp_path)]) == 2
    assert "has no key 'scores'" in capsys.readouterr().err


def test_mask_and_regression_targets_on_the_command_line(tmp_path, capsys):
    from PIL import Image

    from netscope.cli import main
    from netscope.vision.models.images import load_image, sample_image
    from netscope.vision.models.zoo import Preprocess
    from tests.vision.tiny import tiny_segmenter

    mask = np.zeros((300, 451), np.uint8)  # chelsea's shape; white: the cat's face
    mask[60:240, 120:330] = 255
    Image.fromarray(mask).save(tmp_path / "face.png")
    seg = ["vision", "gradcam", "chelsea", "--model", "tests.vision.tiny:tiny_segmenter",
           "--output-key", "out", "--out", str(tmp_path / "o")]
    assert main([*seg, "--mask", str(tmp_path / "face.png"), "--class", "1",
                 "--layer", "body.2"]) == 0
    assert "class 1 (1), layer body.2" in capsys.readouterr().out
    # the map is Grad-CAM of the masked sum, the mask framed as the image and scaled
    pre = Preprocess(16)
    inside = torch.from_numpy(pre.image(load_image(tmp_path / "face.png")).mean(2) > 0.5)
    small = F.interpolate(inside[None, None].float(), size=(8, 8), mode="nearest")[0, 0]
    x = pre.tensor(sample_image("chelsea"))
    inside_small = ScoreFn(lambda o: (o["out"][:, 1] * small).sum((1, 2)))
    expected = A.grad_cam(tiny_segmenter(), x, inside_small, layer="body.2")
    mask = SegmentationMask(1, inside.float(), key="out", resize=True)
    got = A.grad_cam(tiny_segmenter(), x, mask, layer="body.2")
    torch.testing.assert_close(got.maps, expected.maps)
    assert main([*seg, "--mask", str(tmp_path / "face.png")]) == 2
    assert "--mask needs one --class" in capsys.readouterr().err
    reg = ["vision", "saliency", "chelsea", "--model", "tests.vision.tiny:tiny_regressor",
           "--out", str(tmp_path / "r")]
    assert main([*reg, "--regression", "2"]) == 0
    assert "score" in capsys.readouterr().out
    assert (tmp_path / "r").is_dir()
    assert main([*reg, "--regression"]) == 2
    assert "has 3 outputs; name the one" in capsys.readouterr().err
    assert main([*reg, "--regression", "0", "--class", "1"]) == 2
    assert "drop --class" in capsys.readouterr().err


def test_read_output_replaces_its_hook_instead_of_stacking():
    from netscope.vision.core.targets import read_output
    from tests.vision.tiny import tiny_dict

    model, x = tiny_dict(), torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        full = model(x)
        read_output(model, "logits")
        read_output(model, "logits")  # a second call (a second command on the same model)
        assert len(model._forward_hooks) == 1
        torch.testing.assert_close(model(x), full["logits"])
        read_output(model, "features")  # another key replaces the first
        torch.testing.assert_close(model(x), full["features"])
        read_output(model, None)  # and None gives the whole output back
        assert len(model._forward_hooks) == 0 and set(model(x)) == {"logits", "features"}
