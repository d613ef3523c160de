"""Models as they come: outputs that carry their class scores as ``logits`` beside other
parts (Hugging Face's ImageClassifierOutput), written-out ("eager") attention, and a model
whose scores ignore the input. The Hugging Face tests build a small ViT from a config (no
weights) and are skipped when the optional ``transformers`` package is missing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netscope import vision as A
from netscope.errors import NetscopeError
from netscope.vision.core.layer_choice import default_layer
from netscope.vision.methods.rollout import attention_rollout
from netscope.vision.models.predict import predict
from tests.vision.tiny_transformers import Attention, tiny_vit


class EagerAttention(Attention):
    """The same attention written out: softmax(q k^T / sqrt(d)) v, as Hugging Face's eager
    implementation computes it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        weights = F.softmax(q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5, dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(n, t, c))


class Output(dict):
    """A dict-like output with the scores under ``logits`` (as transformers' ModelOutput)."""


class WithOutput(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Output:
        logits = self.model(x)
        return Output(logits=logits, hidden=torch.zeros(x.shape[0], 2))


def _eager(model: nn.Module) -> nn.Module:
    for block in model.blocks:
        eager = EagerAttention(16, block.attn.heads)
        eager.load_state_dict(block.attn.state_dict())
        block.attn = eager
    return model


def test_logits_are_read_from_a_model_output():
    """Every method that needs class scores reads ``logits`` from a dict-like output with
    other parts: the default layer's probe, Grad-CAM, rollout, saliency, predict."""
    torch.manual_seed(0)
    plain = tiny_vit()
    wrapped = WithOutput(plain)
    x = torch.randn(2, 3, 32, 32)
    assert str(default_layer(wrapped, x)) == "model." + str(default_layer(plain, x))
    ref, got = A.grad_cam(plain, x), A.grad_cam(wrapped, x)
    torch.testing.assert_close(got.maps, ref.maps, rtol=0, atol=1e-6)
    assert isinstance(got.logits, torch.Tensor)
    torch.testing.assert_close(got.logits, plain(x))
    torch.testing.assert_close(attention_rollout(wrapped, x).maps,
                               attention_rollout(plain, x).maps)
    assert attention_rollout(wrapped, x).classes.tolist() == plain(x).argmax(1).tolist()
    torch.testing.assert_close(A.explain("saliency", wrapped, x).maps,
                               A.explain("saliency", plain, x).maps)
    assert predict(wrapped, x, k=2) == predict(plain, x, k=2)


def test_rollout_reads_written_out_attention():
    """Rollout of a ViT whose attention is written out (softmax, matmul) equals rollout of
    the same weights through F.scaled_dot_product_attention."""
    sdpa = tiny_vit()
    eager = _eager(tiny_vit())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(eager(x), sdpa(x), rtol=0, atol=1e-5)
    ref, got = attention_rollout(sdpa, x), attention_rollout(eager, x)
    assert got.layer == ref.layer == "attention (2 layers)"
    torch.testing.assert_close(got.maps, ref.maps, rtol=0, atol=1e-5)


def test_scores_that_ignore_the_input_are_named():
    """An all-zero classifier head (torchvision's ViTs without weights): every logit is the
    bias, so no map can show anything; the default layer and a named layer both say so."""
    model = tiny_vit()
    nn.init.zeros_(model.head.weight)
    x = torch.randn(1, 3, 32, 32)
    for call in (lambda: default_layer(model, x),
                 lambda: A.grad_cam(model, x, layer="blocks.0")):
        with pytest.raises(NetscopeError, match="do not depend on the input image"):
            call()


def _hf_vit(impl: str, **extra):
    transformers = pytest.importorskip("transformers",
                                       reason="the optional transformers package")
    cfg = transformers.ViTConfig(image_size=32, patch_size=4, num_channels=3, hidden_size=16,
                                 num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=32, num_labels=5,
                                 attn_implementation=impl, **extra)
    torch.manual_seed(0)
    return transformers.ViTForImageClassification(cfg).eval()


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_huggingface_vit(impl):
    """A ViTForImageClassification as it comes: the default layer, Grad-CAM and rollout
    without a wrapper; eager and SDPA attention give the same rollout; attentions returned
    in the output are read the same way."""
    model = _hf_vit(impl)
    x = torch.randn(2, 3, 32, 32)
    layer = str(default_layer(model, x))
    assert layer.endswith(".0") and "layer" in layer  # the last block the class token reads
    heat = A.grad_cam(model, x)
    assert heat.maps.shape == (2, 8, 8) and bool(heat.maps.amax() > 0)
    torch.testing.assert_close(heat.logits, model(pixel_values=x).logits)
    roll = attention_rollout(model, x)
    other = _hf_vit("sdpa" if impl == "eager" else "eager")
    torch.testing.assert_close(roll.maps, attention_rollout(other, x).maps, rtol=0, atol=1e-5)
    if impl == "eager":
        shown = _hf_vit("eager", output_attentions=True)
        torch.testing.assert_close(attention_rollout(shown, x).maps, roll.maps)


def test_lrp_on_a_huggingface_vit():
    """LRP of a ViTForImageClassification as it comes (torch.fx cannot trace it; the graph
    comes from torch.export): eager and SDPA attention give the same relevance, with the
    weights held constant and with AttnLRP's rules; layers keep the model's own names."""
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    maps = {}
    for impl in ("eager", "sdpa"):
        model = _hf_vit(impl)
        for attention in ("ah", "attnlrp"):
            heat = A.explain("lrp", model, x, attention=attention)
            assert heat.maps.shape == (3, 32, 32) and torch.isfinite(heat.attributions).all()
            assert heat.classes.tolist() == model(pixel_values=x).logits.argmax(1).tolist()
            maps[impl, attention] = heat.attributions
    for attention in ("ah", "attnlrp"):
        a, b = maps["sdpa", attention], maps["eager", attention]
        assert float((a - b).abs().max() / a.abs().max()) < 1e-5
    assert not torch.allclose(maps["sdpa", "ah"], maps["sdpa", "attnlrp"])
    model = _hf_vit("sdpa")
    layer = next(n for n, _ in model.named_modules() if n.endswith("layers.0.mlp.fc2"))
    heat = A.explain("lrp", model, x, units=layer)
    assert heat.extras["units"].shape[0] == 3
