"""LeGrad: the logit lens it scores blocks with, TorchCAM on the same model, and the
errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.capture import capture
from netscope.vision.methods.legrad import score_projection
from netscope.vision.methods.registry import explain
from tests.vision.tiny import TinyGAP, image
from tests.vision.tiny_transformers import EncoderBlock, TinyViT, TorchvisionViT


class ClassTokenViT(nn.Module):
    image_size = 32

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.patch_embed = nn.Conv2d(3, 16, 4, 4)
        self.cls_token = nn.Parameter(torch.randn(1, 1, 16) * 0.5)
        self.pos = nn.Parameter(torch.randn(1, 64, 16) * 0.5)
        self.blocks = nn.Sequential(*[EncoderBlock(16, 2, 32) for _ in range(3)])
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos
        x = torch.cat([self.cls_token.expand(p.shape[0], -1, -1), p], 1)
        return self.head(self.norm(self.blocks(x))[:, 0])


@pytest.mark.parametrize("cls_token", [True, False])
def test_the_last_blocks_projection_is_the_models_output(cls_token):
    model = TinyViT(cls_token=cls_token).double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with capture(model, ["blocks.1"]) as rec, torch.no_grad():
        out = model(x)
        tokens = rec["blocks.1"]
    project = score_projection(model, model.prefix)
    torch.testing.assert_close(project(tokens), out)


@pytest.mark.parametrize("mha", [False, True])
def test_maps_on_both_attention_paths(mha):
    model = TinyViT(mha=mha).double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    heat = explain("legrad", model, x, [1, 3])
    last = explain("legrad", model, x, [1, 3], blocks=1)
    assert heat.maps.shape == (2, 8, 8) and heat.layer == "attention (2 blocks)"
    assert last.layer == "attention (1 blocks)" and not torch.allclose(heat.maps, last.maps)
    mods = [m for m in model.modules() if m._forward_hooks or m._forward_pre_hooks]
    assert not mods  # every hook gone


def test_equal_to_torchcam_where_installed():
    methods = pytest.importorskip("torchcam.methods", reason="TorchCAM is a peer")
    torch.manual_seed(0)
    model = TorchvisionViT().double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    ours = explain("legrad", model, x, [1, 3], normalize="minmax").maps
    blocks = [f"encoder.layers.{i}" for i in range(3)]
    own_forward = lambda z: model.heads(model.encoder.ln(z)[:, 0])  # noqa: E731
    with methods.LeGrad(model, blocks, score_projection=own_forward) as cam:
        ref = cam([1, 3], model(x))[0]
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)  # TorchCAM's min-max has an eps
    # TorchCAM's default projection for torchvision's ViT averages all tokens, where the
    # model itself reads the class token: netscope follows the model
    mean_tokens = lambda z: model.heads(model.encoder.ln(z.mean(1)))  # noqa: E731
    with methods.LeGrad(model, blocks) as cam:
        default = cam([1, 3], model(x))[0]
    theirs = explain("legrad", model, x, [1, 3], normalize="minmax",
                     score_projection_fn=mean_tokens).maps
    torch.testing.assert_close(theirs, default, rtol=0, atol=1e-5)
    assert (ours - default).abs().max() > 0.05


def test_models_without_blocks_or_heads_are_refused():
    with pytest.raises(NetscopeError, match="LeGrad needs a vision transformer's list"):
        explain("legrad", TinyGAP(), image(1))
    model = ClassTokenViT().eval()
    model.head, model.out = None, model.head  # no head where LeGrad looks
    model.forward = lambda x: model.out(model.norm(model.blocks(torch.cat(
        [model.cls_token.expand(x.shape[0], -1, -1),
         model.patch_embed(x).flatten(2).transpose(1, 2) + model.pos], 1)))[:, 0])
    with pytest.raises(NetscopeError, match="pass score_projection_fn"):
        explain("legrad", model, torch.randn(1, 3, 32, 32))
    heat = explain("legrad", model, torch.randn(1, 3, 32, 32), score_projection_fn=lambda z:
                   model.out(model.norm(z)[:, 0]))
    assert heat.maps.shape == (1, 8, 8)


@pytest.mark.parametrize("mha", [False, True])
def test_attention_is_recorded_in_the_chosen_blocks_only(mha):
    """Blocks outside ``within`` keep their fused attention and record nothing; the chosen
    block's weights are the same as when every block records."""
    from netscope.vision.core.attention_record import attention_recorded

    model = TinyViT(mha=mha, depth=3).double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        plain = model(x)
        with attention_recorded(model) as every:
            model(x)
        with attention_recorded(model, within=[model.blocks[1]]) as one:
            torch.testing.assert_close(model(x), plain)
    assert len(every) == 3 and len(one) == 1
    torch.testing.assert_close(one[0], every[1])
    heat = explain("legrad", model, x, [1, 3], blocks=2)
    assert heat.layer == "attention (2 blocks)"


class _KeywordViT(TinyViT):
    """Calls its blocks by keyword (as Hugging Face's encoders may): the graph cannot start
    at the first chosen block's input, so LeGrad starts it at the image instead."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos
        z = torch.cat([self.cls_token.expand(p.shape[0], -1, -1), p], 1)
        for block in self.blocks:
            z = block(x=z)
        return self.head(self.norm(z)[:, 0])


def test_blocks_called_by_keyword_give_the_same_maps():
    torch.manual_seed(0)
    model = TinyViT(depth=3).double().eval()
    keyword = _KeywordViT(depth=3).double().eval()
    keyword.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    for blocks in (None, 2):
        torch.testing.assert_close(explain("legrad", keyword, x, [1, 3], blocks=blocks).maps,
                                   explain("legrad", model, x, [1, 3], blocks=blocks).maps)
