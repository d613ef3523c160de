"""Small vision transformers with random weights (patch 4, 32x32 inputs): a ViT with a
class token (attention through scaled_dot_product_attention or nn.MultiheadAttention,
optional register tokens) and a Swin-like model whose blocks work on channels-last grids.
Also importable as model factories: ``tests.vision.tiny_transformers:tiny_vit``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention through F.scaled_dot_product_attention (as timm does)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(n, t, c))


class MHA(nn.Module):
    """nn.MultiheadAttention without weights returned (as torchvision's ViT calls it)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=False)[0]


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mha: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MHA(dim, heads) if mha else Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    image_size = 32  # read by netscope's model loader, as torchvision's ViT declares it

    def __init__(self, classes: int = 5, dim: int = 16, depth: int = 2, heads: int = 2,
                 patch: int = 4, size: int = 32, registers: int = 0, mha: bool = False,
                 cls_token: bool = True) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.prefix = int(cls_token) + registers
        self.cls_token = nn.Parameter(torch.randn(1, self.prefix, dim) * 0.5)
        self.pos = nn.Parameter(torch.randn(1, (size // patch) ** 2, dim) * 0.5)
        self.blocks = nn.Sequential(*[Block(dim, heads, mha) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)
        self.use_cls = cls_token

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos
        x = torch.cat([self.cls_token.expand(p.shape[0], -1, -1), p], 1)
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0] if self.use_cls else x[:, self.prefix:].mean(1))


class SwinLikeBlock(nn.Module):
    """A block on a channels-last (N, h, w, C) grid: norm, mixing with the neighbours below
    and to the right (a stand-in for window attention, no convolution), norm, MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.mix = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.mix(y + y.roll(1, 1) + y.roll(1, 2))
        return x + self.mlp(self.norm2(x))


class TinySwin(nn.Module):
    """Patch 4 -> 8x8 grid, a block, 2x2 merge -> 4x4, a block, final norm, mean, head."""

    image_size = 32

    def __init__(self, classes: int = 5, dim: int = 12) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 4, 4)
        self.stage1 = SwinLikeBlock(dim)
        self.merge = nn.Linear(4 * dim, 2 * dim)
        self.stage2 = SwinLikeBlock(2 * dim)
        self.norm = nn.LayerNorm(2 * dim)
        self.head = nn.Linear(2 * dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage1(self.patch_embed(x).permute(0, 2, 3, 1))
        n, h, w, c = x.shape
        x = x.view(n, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(
            n, h // 2, w // 2, 4 * c)
        x = self.norm(self.stage2(self.merge(x)))
        return self.head(x.mean((1, 2)))


class EncoderBlock(nn.Module):
    """torchvision's ViT block: ``ln_1``, a batch-first ``self_attention`` child (where
    TorchCAM's LeGrad hooks), ``ln_2``, ``mlp``."""

    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.self_attention(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    def __init__(self, tokens: int, dim: int, depth: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.layers = nn.Sequential(*[EncoderBlock(dim, heads, mlp) for _ in range(depth)])
        self.ln = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.layers(x + self.pos_embedding))


class TorchvisionViT(nn.Module):
    """torchvision's ``VisionTransformer`` layout (``conv_proj``, ``class_token``,
    ``encoder.layers``, ``encoder.ln``, ``heads``) with random weights, so peers that know
    torchvision's ViT run on it without torchvision; ``vit_b16()`` is ViT-B/16's size."""

    def __init__(self, size: int = 32, patch: int = 4, dim: int = 16, depth: int = 3,
                 heads: int = 2, mlp: int = 32, classes: int = 5) -> None:
        super().__init__()
        self.image_size, self.patch_size = size, patch
        self.conv_proj = nn.Conv2d(3, dim, patch, patch)
        self.class_token = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.encoder = Encoder((size // patch) ** 2 + 1, dim, depth, heads, mlp)
        self.heads = nn.Sequential(nn.Linear(dim, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.conv_proj(x).flatten(2).transpose(1, 2)
        z = torch.cat([self.class_token.expand(p.shape[0], -1, -1), p], 1)
        return self.heads(self.encoder(z)[:, 0])


def vit_b16(seed: int = 0) -> nn.Module:
    """A ViT-B/16 (224 px, 12 blocks of width 768, 12 heads, 1000 classes), random weights."""
    torch.manual_seed(seed)
    return TorchvisionViT(224, 16, 768, 12, 12, 3072, 1000).eval()


def tiny_vit() -> nn.Module:
    torch.manual_seed(0)
    return TinyViT().eval()


def tiny_swin() -> nn.Module:
    torch.manual_seed(0)
    return TinySwin().eval()


def quadrant_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """32x32 noise images, each with one strongly textured 8x8 square in quadrant ``label``
    (0-3, row major); returns (images, labels, (N, 32, 32) masks of the squares)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=gen) * 0.5
    labels = torch.randint(0, 4, (n,), generator=gen)
    masks = torch.zeros(n, 32, 32)
    for i, k in enumerate(labels.tolist()):
        r, c = 16 * (k // 2) + int(torch.randint(0, 9, (1,), generator=gen)), \
            16 * (k % 2) + int(torch.randint(0, 9, (1,), generator=gen))
        x[i, :, r:r + 8, c:c + 8] = torch.randn(3, 8, 8, generator=gen) * 2
        masks[i, r:r + 8, c:c + 8] = 1
    return x, labels, masks


def trained(model: nn.Module, steps: int = 300, seed: int = 0) -> nn.Module:
    """``model`` (4+ classes) trained to name the quadrant of the bright square."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        x, y, _ = quadrant_images(64, seed * 100_000 + step)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()
