"""AttnLRP's rules for attention (Achtibat et al. 2024), checked against their definitions
computed by autograd on one attention step, end to end on small transformers, and their
errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.methods.relevance.attention import Attention
from netscope.vision.methods.relevance.propagate import lrp
from tests.vision.tiny_transformers import TinyViT


def test_one_attention_step_against_the_definitions():
    """Uniform rule on A v (half to each factor, epsilon rule with the other fixed), the
    softmax's first-order Taylor term at the logits (its Jacobian from autograd), and the
    uniform rule again on q k^T * scale: each computed here from its definition."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 1, 4, 3, dtype=torch.float64) for _ in range(3))
    unit = Attention("a", 0.0, (None, False), "attnlrp")
    qi, ki, vi = (t.clone().requires_grad_(True) for t in (q, k, v))
    y = unit(qi, ki, vi)
    R = torch.rand_like(y)
    Rq, Rk, Rv = torch.autograd.grad(y, (qi, ki, vi), R)

    scale = 3 ** -0.5
    L = q @ k.transpose(-2, -1) * scale
    A = L.softmax(-1)
    s = R / (A @ v)
    assert torch.allclose(Rv, 0.5 * v * (A.transpose(-2, -1) @ s))
    RA = 0.5 * A * (s @ v.transpose(-2, -1))
    J = torch.autograd.functional.jacobian(lambda z: z.softmax(-1), L[0, 0])  # (4,4,4,4)
    RL = torch.einsum("ti,titj->tj", RA[0, 0] / A[0, 0], J) * L[0, 0]  # sum_i L_j dA_i/dL_j R_i/A_i
    assert torch.allclose(RL, L[0, 0] * (RA[0, 0] - A[0, 0] * RA[0, 0].sum(-1, keepdim=True)))
    sL = RL / L[0, 0]
    qg, kg = q.clone().requires_grad_(True), k.clone().requires_grad_(True)
    gq, gk = torch.autograd.grad(((qg @ kg.transpose(-2, -1) * scale)[0, 0] * sL).sum(),
                                 (qg, kg))
    assert torch.allclose(Rq, 0.5 * q * gq) and torch.allclose(Rk, 0.5 * k * gk)
    ah = Attention("a", 0.0, (None, False), "ah")
    qi, ki, vi = (t.clone().requires_grad_(True) for t in (q, k, v))
    Rq0, Rk0, Rv0 = torch.autograd.grad(ah(qi, ki, vi), (qi, ki, vi), R)
    assert not Rq0.any() and not Rk0.any() and torch.allclose(Rv0, 2 * Rv)
    assert torch.allclose(Rv0.sum(), R.sum())  # AH conserves: every bit to the values


class WrittenOut(nn.Module):
    """Attention written out with a constant scale: softmax(q k^T * scale) v."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        weights = (q @ k.transpose(-2, -1) * self.scale).softmax(-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(n, t, c))


class OneBlock(nn.Module):
    """tokens -> qkv -> attention -> mean over tokens -> head, no residual, no bias."""

    def __init__(self, mha: bool, zero_qk: bool = False) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.embed = nn.Conv2d(3, 8, 4, 4, bias=False)
        self.mha = mha
        if mha:
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True, bias=False)
            weight = self.attn.in_proj_weight
        else:
            self.qkv = nn.Linear(8, 24, bias=False)
            weight = self.qkv.weight
        if zero_qk:
            with torch.no_grad():
                weight[:16] = 0
        self.head = nn.Linear(8, 3, bias=False)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)  # (N, 16, 8)
        if self.mha:
            y = self.attn(t, t, t, need_weights=False)[0]
        else:
            n, m, c = t.shape
            q, k, v = self.qkv(t).view(n, m, 3, 2, 4).permute(2, 0, 3, 1, 4)
            y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, m, c)
        return self.head(y.mean(1))


@pytest.mark.parametrize("mha", [False, True])
def test_attnlrp_end_to_end(mha):
    """With the query and key projections zero the logits vanish, so AttnLRP passes
    exactly half of AH's relevance (the values' half, nothing through softmax); with real
    projections the queries and keys add relevance AH never gives them."""
    x = torch.randn(2, 3, 16, 16)
    flat = OneBlock(mha, zero_qk=True).eval()
    ah = lrp(flat, x, [0, 1], composite="epsilon", epsilon=1e-9)
    attn = lrp(flat, x, [0, 1], composite="epsilon", epsilon=1e-9, attention="attnlrp")
    torch.testing.assert_close(attn.attributions, 0.5 * ah.attributions, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(ah.extras["relevance"], ah.extras["score"], rtol=1e-4, atol=1e-6)
    real = OneBlock(mha).eval()
    ah, attn = (lrp(real, x, [0, 1], composite="epsilon", epsilon=1e-9, attention=a)
                for a in ("ah", "attnlrp"))
    assert torch.isfinite(attn.attributions).all()
    assert not torch.allclose(attn.attributions, 0.5 * ah.attributions, atol=1e-6)


def test_attnlrp_on_a_vit_written_out_or_fused_and_its_errors():
    """The same ViT with attention through F.scaled_dot_product_attention and written out
    (matmul, softmax, constant scale) gets the same AttnLRP map: the softmax and both
    bilinear products get the rules the fused step applies."""
    torch.manual_seed(0)
    fused = TinyViT().eval()
    x = torch.randn(2, 3, 32, 32)
    heat = lrp(fused, x, attention="attnlrp")
    assert torch.isfinite(heat.attributions).all() and heat.maps.amax() > 0
    with pytest.raises(NetscopeError, match="attention must be one of ah, attnlrp"):
        lrp(fused, x, attention="lxt")
    torch.manual_seed(0)
    written = TinyViT().eval()
    for block in written.blocks:
        eager = WrittenOut(16, block.attn.heads)
        eager.load_state_dict(block.attn.state_dict())
        block.attn = eager
    torch.testing.assert_close(written(x), fused(x), rtol=0, atol=1e-5)
    for attention in ("ah", "attnlrp"):
        a = lrp(fused, x, attention=attention).attributions
        b = lrp(written, x, attention=attention).attributions
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6 * float(a.abs().max()))


class Masked(nn.Module):
    """Self-attention over patch tokens with a mask computed from the image: a boolean one
    (a constant to relevance) or an additive one (which would carry relevance)."""

    def __init__(self, additive: bool) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.embed = nn.Conv2d(3, 8, 4, 4)
        self.head = nn.Linear(8, 2)
        self.additive = additive

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)[:, None]  # (N, 1, 16, 8)
        keys = t[..., :1].transpose(-2, -1)  # (N, 1, 1, 16): one value per key
        mask = keys * 0.5 if self.additive else \
            (keys > 0) | torch.eye(16, dtype=torch.bool)  # every query keeps itself
        y = F.scaled_dot_product_attention(t, t, t, attn_mask=mask)
        return self.head(y[:, 0].mean(1))


def test_attention_masks_from_the_input():
    """A boolean mask computed from the image is a constant to relevance (the map is the
    same as with that mask fixed); an additive one would carry relevance and is refused by
    name, not propagated wrongly."""
    x = torch.randn(1, 3, 16, 16)
    heat = lrp(Masked(False).eval(), x)
    assert torch.isfinite(heat.attributions).all() and heat.maps.amax() > 0
    with pytest.raises(NetscopeError, match="masks computed from the input are not "
                                            "supported"):
        lrp(Masked(True).eval(), x)


def test_len_of_a_tensor_in_forward_traces_as_its_first_dimension():
    """``cls.expand(len(x), -1, -1)`` (common in ViTs) was refused as data-dependent
    control flow; it traces as ``x.shape[0]`` does, and the map is the same."""
    import torch

    from netscope.vision import lrp
    from tests.vision.tiny_transformers import TinyViT

    class LenViT(TinyViT):
        def forward(self, x):
            p = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos
            x = torch.cat([self.cls_token.expand(len(x), -1, -1), p], 1)
            return self.head(self.norm(self.blocks(x))[:, 0])

    torch.manual_seed(0)
    plain = TinyViT().eval()
    with_len = LenViT().eval()
    with_len.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(lrp(with_len, x, [0, 1]).attributions,
                               lrp(plain, x, [0, 1]).attributions)
    assert len([1, 2, 3]) == 3  # len is itself again after tracing


@pytest.mark.parametrize("attention", ["ah", "attnlrp"])
def test_lrp_of_a_vit_built_on_pytorchs_transformer_encoder(attention):
    """nn.TransformerEncoder (norm first, GELU, batch first) was one opaque module to LRP
    ("give it one by name: Pass()", which breaks conservation); it is now written out as its
    operations: the map equals that of the same ViT written with nn.MultiheadAttention
    blocks, for both attention rules."""
    import torch
    from torch import nn

    from netscope.vision import lrp
    from tests.vision.tiny_transformers import TinyViT

    class EncoderViT(TinyViT):
        def __init__(self):
            super().__init__(mha=True)
            layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

        def forward(self, x):
            p = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), p], 1)
            return self.head(self.norm(self.encoder(x))[:, 0])

    torch.manual_seed(0)
    written = TinyViT(mha=True).eval()
    encoder = EncoderViT().eval()
    encoder.load_state_dict(written.state_dict(), strict=False)
    for block, layer in zip(written.blocks, encoder.encoder.layers, strict=True):
        layer.self_attn.load_state_dict(block.attn.attn.state_dict())
        layer.norm1.load_state_dict(block.norm1.state_dict())
        layer.norm2.load_state_dict(block.norm2.state_dict())
        layer.linear1.load_state_dict(block.mlp[0].state_dict())
        layer.linear2.load_state_dict(block.mlp[2].state_dict())
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(encoder(x), written(x))
    got = lrp(encoder, x, [0, 1], attention=attention)
    want = lrp(written, x, [0, 1], attention=attention)
    torch.testing.assert_close(got.attributions, want.attributions, rtol=1e-4, atol=1e-6)
