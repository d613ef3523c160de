"""Vision transformers without glue code: token layers become grids for every CAM method,
the default layer is one the score depends on, and attention rollout."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netscope import vision as A
from netscope.cli import main
from netscope.errors import NetscopeError
from netscope.vision.core.attention_record import attention_recorded
from netscope.vision.core.capture import capture
from netscope.vision.core.layer_choice import default_layer, grid_layers
from netscope.vision.core.token_grid import infer_layout, layout_for, patch_size
from netscope.vision.features.activations import activations, conv_stages
from netscope.vision.methods.forward_cams import ablation_cam, score_cam
from netscope.vision.methods.rollout import attention_rollout, rollout_matrix
from tests.vision.tiny_transformers import TinyViT, tiny_swin, tiny_vit

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_tokens_become_a_grid_by_hand():
    """A (N, 2 + 2x3, C) sequence: value 100 c + 10 i + j at patch (i, j); prefix tokens -1."""
    n, h, w, c = 2, 2, 3, 4
    patches = torch.tensor([[[100.0 * k + 10 * i + j for k in range(c)]
                             for i in range(h) for j in range(w)]]).expand(n, -1, -1)
    seq = torch.cat([-torch.ones(n, 2, c), patches], 1)
    layout = infer_layout(tuple(seq.shape), (8, 12), patch=4)
    assert (layout.form, layout.prefix, layout.grid) == ("tokens", 2, (2, 3))
    grid = layout.to_grid(seq)
    assert grid.shape == (n, c, h, w)
    for k in range(c):
        for i in range(h):
            for j in range(w):
                assert grid[1, k, i, j] == 100 * k + 10 * i + j
    mask = torch.zeros(n, c, h, w)
    mask[:, 3, 1, 2] = 1
    back = layout.mask_back(seq, mask)  # the adjoint puts the 1 at token 2 + 1*3 + 2
    assert back.sum() == n and (back[:, 7, 3] == 1).all()


@pytest.mark.parametrize("shape, size, patch, expected", [
    ((2, 197, 768), (224, 224), 16, ("tokens", 1, (14, 14))),  # ViT-B/16
    ((2, 197, 768), (224, 224), None, ("tokens", 1, (14, 14))),  # patch size unknown
    ((2, 198, 192), (224, 224), 16, ("tokens", 2, (14, 14))),  # DeiT: class + distillation
    ((2, 201, 384), (224, 224), 14 * 0 + 16, ("tokens", 5, (14, 14))),  # 4 registers
    ((2, 281, 64), (224, 320), 16, ("tokens", 1, (14, 20))),  # not square
    ((2, 49, 768), (224, 224), 4, ("tokens", 0, (7, 7))),  # Swin's last stage as tokens
    ((2, 7, 7, 768), (224, 224), 4, ("nhwc", 0, None)),  # Swin, channels last
    ((2, 768, 7, 7), (224, 224), None, ("nchw", 0, None)),  # a CNN
])
def test_layouts(shape, size, patch, expected):
    layout = infer_layout(shape, size, patch)
    assert (layout.form, layout.prefix, layout.grid) == expected
    grid = layout.to_grid(torch.zeros(shape))
    assert grid.shape[0] == 2 and grid.shape[2:] in ((14, 14), (14, 20), (7, 7))


def test_layouts_that_cannot_form_a_grid():
    with pytest.raises(NetscopeError, match=r"gives 60 tokens \(shape \(2, 60, 8\)\).*patch "
                                            r"size 16.*reshape transform"):
        infer_layout((2, 60, 8), (224, 224), 16)
    with pytest.raises(NetscopeError, match="no spatial grid"):
        infer_layout((2, 1000), (224, 224))
    with pytest.raises(NetscopeError, match="must return .batch, channels, height, width"):
        A.grad_cam(tiny_vit(), X, layer="blocks.0", reshape=lambda a: a[:, 1:])
    with pytest.raises(NetscopeError, match="reshape must be a function"):
        A.grad_cam(tiny_vit(), X, layer="blocks.0", reshape="tokens")


def test_patch_size_is_found():
    assert patch_size(tiny_vit()) == 4 and patch_size(tiny_swin()) == 4
    assert patch_size(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())) is None


def test_grad_cam_on_tokens_equals_the_computation_by_hand():
    model = tiny_vit()
    heat = A.grad_cam(model, X, [1, 3], layer="blocks.0.norm1", normalize="none")
    with capture(model, ["blocks.0.norm1"], cut=True) as rec:
        out = model(X)
        tokens = rec["blocks.0.norm1"]
        (g,) = torch.autograd.grad(out[0, 1] + out[1, 3], tokens)
    a = tokens.detach()[:, 1:].reshape(2, 8, 8, 16).permute(0, 3, 1, 2)
    g = g[:, 1:].reshape(2, 8, 8, 16).permute(0, 3, 1, 2)
    expected = F.relu((g.mean((2, 3), keepdim=True) * a).sum(1))
    assert heat.maps.shape == (2, 8, 8) and expected.abs().sum() > 0
    torch.testing.assert_close(heat.maps, expected)
    # a user's explicit transform (pytorch-grad-cam style) gives the same maps
    user = A.grad_cam(model, X, [1, 3], layer="blocks.0.norm1", normalize="none",
                      reshape=lambda t: t[:, 1:].reshape(t.shape[0], 8, 8, -1)
                      .permute(0, 3, 1, 2))
    torch.testing.assert_close(user.maps, expected)


def test_default_layer_is_one_the_score_depends_on():
    vit = tiny_vit()
    # the residual stream entering the last attention (the last block's output has no
    # gradient on the patches); mean-pooled: the last block; no block list: the last norm
    assert str(default_layer(vit, X)) == "blocks.0"
    assert str(default_layer(TinyViT(registers=4).eval(), X)) == "blocks.0"
    assert str(default_layer(TinyViT(mha=True, depth=3).eval(), X)) == "blocks.1"
    assert str(default_layer(TinyViT(cls_token=False).eval(), X)) == "blocks.1"
    assert str(default_layer(tiny_swin(), X)) == "norm"
    # after the last attention the class token no longer sees the patches: empty maps
    late = A.grad_cam(vit, X, layer="norm")
    assert late.maps.abs().sum() == 0 and "zero gradient" in late.warnings[0]
    assert A.grad_cam(vit, X).layer == "blocks.0"
    grids = {g.name: g for g in grid_layers(vit, X[:1])}
    assert not grids["blocks.1.norm2"].gradient and grids["blocks.1.norm1"].gradient
    assert grids["blocks.0"].layout == "1 prefix + 8x8 patch tokens" and "head" not in grids


def test_channels_last_layers():
    swin = tiny_swin()
    heat = A.grad_cam(swin, X, layer="stage1.norm2")
    assert heat.maps.shape == (2, 8, 8) and heat.maps.amax() == 1
    assert layout_for(swin, torch.zeros(1, 8, 8, 12), (32, 32), "stage1.norm2").form == "nhwc"
    g = {x.name: x for x in grid_layers(swin, X[:1])}
    assert g["merge"].layout == "channels-last grid 4x4"
    assert g["patch_embed"].layout == "feature map 8x8"


@pytest.mark.parametrize("method", ["eigencam", "scorecam", "ablationcam", "gradcam++",
                                    "layercam"])
def test_every_cam_method_on_tokens(method):
    model = tiny_vit()
    fn = {"eigencam": lambda: A.eigen_cam(model, X, layer="blocks.0"),
          "scorecam": lambda: score_cam(model, X, [0, 1], layer="blocks.0"),
          "ablationcam": lambda: ablation_cam(model, X, [0, 1], layer="blocks.0"),
          "gradcam++": lambda: A.grad_cam(model, X, [0, 1], layer="blocks.0", variant="gradcam++"),
          "layercam": lambda: A.grad_cam(model, X, [0, 1], layer="blocks.0",
                                         variant="layercam")}[method]
    heat = fn()
    assert heat.maps.shape == (2, 8, 8) and torch.isfinite(heat.maps).all()
    assert heat.maps.amax() == 1


def test_ablation_cam_on_tokens_zeroes_a_channel_at_the_patches_only():
    """Each channel's weight is the relative drop of the logit when that channel is zeroed
    at the 64 patch tokens (the class token keeps it), computed here by a plain hook."""
    model, layer = tiny_vit(), "blocks.0"
    heat = ablation_cam(model, X[:1], [2], layer=layer, normalize="none")
    with torch.no_grad():
        base = model(X[:1])[0, 2]
        weights = []
        for k in range(16):
            def zero(module, inputs, out, k=k):
                out = out.clone()
                out[:, 1:, k] = 0
                return out
            h = model.blocks[0].register_forward_hook(zero)
            weights.append((base - model(X[:1])[0, 2]) / base)
            h.remove()
        with capture(model, [layer]) as rec:
            model(X[:1])
            a = rec[layer][:, 1:].reshape(1, 8, 8, 16).permute(0, 3, 1, 2)
    expected = F.relu((torch.stack(weights).view(1, 16, 1, 1) * a).sum(1))
    torch.testing.assert_close(heat.maps, expected, rtol=1e-4, atol=1e-5)


def test_activations_and_stages_of_a_transformer():
    model = tiny_vit()
    assert conv_stages(model) == ["blocks.0", "blocks.1"]
    acts = activations(model, X[:1])
    assert {k: tuple(v.shape) for k, v in acts.items()} == {"blocks.0": (1, 16, 8, 8),
                                                           "blocks.1": (1, 16, 8, 8)}
    raw = activations(model, X[:1], ["blocks.0"], grid=False)
    torch.testing.assert_close(acts["blocks.0"][0, :, 2, 5], raw["blocks.0"][0, 1 + 2 * 8 + 5])


def _manual_attention(model: TinyViT, x: torch.Tensor, block: int) -> torch.Tensor:
    """Layer ``block``'s attention recomputed from the qkv weights."""
    with torch.no_grad():
        p = model.patch_embed(x).flatten(2).transpose(1, 2) + model.pos
        t = torch.cat([model.cls_token.expand(p.shape[0], -1, -1), p], 1)
        for b in model.blocks[:block]:
            t = b(t)
        blk = model.blocks[block]
        n, k, c = t.shape
        q, key, _ = blk.attn.qkv(blk.norm1(t)).view(n, k, 3, 2, c // 2).permute(2, 0, 3, 1, 4)
        return (q @ key.transpose(-2, -1) / math.sqrt(c // 2)).softmax(-1)


def test_attention_is_read_without_changing_the_model():
    for model in (tiny_vit(), TinyViT(mha=True).eval()):
        with torch.no_grad():
            before = model(X)
            with attention_recorded(model) as rec:
                during = model(X)
        torch.testing.assert_close(during, before)
        assert [tuple(a.shape) for a in rec] == [(2, 2, 65, 65)] * 2
        torch.testing.assert_close(rec[0].sum(-1), torch.ones(2, 2, 65))
    sdpa = tiny_vit()
    with torch.no_grad(), attention_recorded(sdpa) as rec:
        sdpa(X)
    torch.testing.assert_close(rec[1], _manual_attention(sdpa, X, 1))
    assert F.scaled_dot_product_attention.__module__.startswith("torch")  # put back


def test_reading_attention_touches_no_other_thread():
    """Live mode serves frames from a second thread: while one thread records a ViT's
    attention, torch's function stays the same for every thread, and another thread's
    attention neither changes nor lands in the record."""
    import threading

    original = F.scaled_dot_product_attention
    q = torch.randn(1, 2, 5, 4, generator=torch.Generator().manual_seed(1))
    expected = original(q, q, q)
    seen = {}

    def elsewhere():
        seen["same"] = F.scaled_dot_product_attention is original
        seen["out"] = F.scaled_dot_product_attention(q, q, q)

    model = tiny_vit()
    with torch.no_grad(), attention_recorded(model) as rec:
        assert F.scaled_dot_product_attention is original  # nothing patched process-wide
        worker = threading.Thread(target=elsewhere)
        worker.start()
        worker.join()
        model(X)
    assert seen["same"] and torch.equal(seen["out"], expected)
    assert [tuple(a.shape) for a in rec] == [(2, 2, 65, 65)] * 2  # this pass's layers only


def test_rollout_by_hand():
    """Two tokens, one head, two layers: (0.5 A + 0.5 I) rows renormalized, multiplied."""
    a1 = torch.tensor([[[[0.2, 0.8], [0.6, 0.4]]]])
    a2 = torch.tensor([[[[0.5, 0.5], [0.1, 0.9]]]])
    s1 = torch.tensor([[0.6, 0.4], [0.3, 0.7]], dtype=torch.float64)
    s2 = torch.tensor([[0.75, 0.25], [0.05, 0.95]], dtype=torch.float64)
    torch.testing.assert_close(rollout_matrix([a1, a2])[0], s2 @ s1)
    uniform = [torch.full((1, 3, 5, 5), 0.2)] * 3
    torch.testing.assert_close(rollout_matrix(uniform, "max").sum(-1), torch.ones(1, 5,
                                                                                 dtype=torch.float64))


def test_rollout_maps():
    model = tiny_vit()
    heat = attention_rollout(model, X)
    assert heat.maps.shape == (2, 8, 8) and heat.method == "rollout"
    assert heat.layer == "attention (2 layers)" and heat.maps.amax() == 1
    attn = [_manual_attention(model, X, b).double() for b in (0, 1)]
    expected = rollout_matrix(attn)[:, 0, 1:].reshape(2, 8, 8)
    torch.testing.assert_close(heat.maps.double(), expected / expected.flatten(1).amax(1)
                               .view(2, 1, 1), rtol=1e-4, atol=1e-5)
    mha = attention_rollout(TinyViT(mha=True).eval(), X, fusion="max", discard=0.5)
    assert mha.maps.shape == (2, 8, 8) and torch.isfinite(mha.maps).all()
    gap = attention_rollout(TinyViT(cls_token=False).eval(), X)  # mean over rows
    assert gap.maps.shape == (2, 8, 8)


class Windowed(nn.Module):
    """Attention inside 4 windows of 16 tokens: not one sequence per image."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 4, 4)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)  # (N, 64, 8)
        w = t.reshape(-1, 1, 16, 8)
        y = F.scaled_dot_product_attention(w, w, w).reshape(t.shape)
        return self.head(y.mean(1))


def test_rollout_errors():
    with pytest.raises(NetscopeError, match="windowed attention"):
        attention_rollout(Windowed().eval(), X)
    with pytest.raises(NetscopeError, match="no nn.MultiheadAttention"):
        attention_rollout(tiny_swin(), X)
    with pytest.raises(NetscopeError, match="fusion must be one of"):
        attention_rollout(tiny_vit(), X, fusion="sum")
    with pytest.raises(NetscopeError, match="discard must be"):
        attention_rollout(tiny_vit(), X, discard=1.0)


def test_command_line(tmp_path, capsys):
    vit = "tests.vision.tiny_transformers:tiny_vit"
    assert main(["vision", "layers", "--model", vit, "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "| blocks.0           | Block      | 1x65x16      | 1     | yes: 1 prefix + 8x8 " \
           "patch tokens <- default" in out
    assert "score does not depend on it" in out and "default heatmap layer: blocks.0" in out
    for method in ("gradcam", "rollout", "scorecam"):
        assert main(["vision", "gradcam", "chelsea", "--model", vit, "--method", method,
                     "--out", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("chelsea_*.png"))) == 3
    assert main(["vision", "gradcam", "chelsea", "--model", vit, "--method", "rollout",
                 "--class", "1", "--out", str(tmp_path)]) == 2
    assert "attention rollout is class-agnostic" in capsys.readouterr().err


@pytest.mark.parametrize("name, layer", [("vit_b_16", "encoder.layers.encoder_layer_10"),
                                         ("swin_t", "avgpool:input")])
def test_torchvision_transformers(name, layer):
    tv = pytest.importorskip("torchvision", reason="the optional torchvision extra")
    torch.manual_seed(0)
    model = tv.models.get_model(name, weights=None).eval()  # random weights: offline
    for m in model.modules():  # torchvision's untrained ViT head is all zeros: draw one
        if isinstance(m, nn.Linear) and not m.weight.any():
            nn.init.normal_(m.weight, std=0.02)
    x = torch.randn(1, 3, 224, 224)
    assert str(default_layer(model, x)) == layer
    heat = A.grad_cam(model, x)
    assert heat.maps.shape[-2:] in ((14, 14), (7, 7)) and heat.maps.amax() > 0
    if name == "vit_b_16":
        assert attention_rollout(model, x).maps.shape == (1, 14, 14)


def test_timm_deit():
    timm = pytest.importorskip("timm", reason="the optional timm extra")
    model = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False).eval()
    x = torch.randn(1, 3, 224, 224)
    layout = layout_for(model, torch.zeros(1, 198, 192), (224, 224), "blocks.11")
    assert (layout.prefix, layout.grid) == (2, (14, 14))
    assert str(default_layer(model, x)) == "blocks.10"
    assert A.grad_cam(model, x).maps.shape == (1, 14, 14)
    assert attention_rollout(model, x).maps.shape == (1, 14, 14)


def test_default_layer_localizes_on_a_trained_vit():
    """A 3-block ViT trained to name the quadrant of a textured square (about 5 s): Grad-CAM
    at the default layer is higher on the square than off it and beats a random map on
    deletion; at the last block's LayerNorm (pytorch-grad-cam's advice) the maps point away
    from the square (BENCHMARKS.md has the full table)."""
    import torch.nn.functional as F

    from netscope.vision.metrics.faithfulness import deletion
    from tests.vision.tiny_transformers import quadrant_images, trained

    torch.manual_seed(0)
    model = trained(TinyViT(classes=4, depth=3))
    x, y, masks = quadrant_images(64, 999)
    square = F.avg_pool2d(masks[:, None], 4)[:, 0] > 0.99

    def contrast(maps):
        return float(maps[square].mean() - maps[~square].mean())

    default = A.grad_cam(model, x, targets=y)
    assert default.layer == "blocks.1" and contrast(default.maps) > 0.05
    assert contrast(A.grad_cam(model, x, y, layer="blocks.2.norm1").maps) < 0
    rand = torch.rand(64, 8, 8, generator=torch.Generator().manual_seed(0))
    assert deletion(model, x, default, y, 8, "zeros").auc.mean() < \
        deletion(model, x, rand, y, 8, "zeros").auc.mean()


def test_the_default_layer_is_probed_once_per_model(monkeypatch):
    import netscope.vision.core.layer_choice as lc

    calls = []
    real = lc.grid_layers
    monkeypatch.setattr(lc, "grid_layers", lambda m, x: calls.append(1) or real(m, x))
    model = tiny_vit()
    for _ in range(3):
        A.grad_cam(model, X)
    assert len(calls) == 1
    A.grad_cam(tiny_vit(), X)  # another model: probed again
    assert len(calls) == 2
