"""PyTorch's own ``nn.TransformerEncoder`` and ``nn.TransformerEncoderLayer`` written out as
the operations they are (multi-head attention, layer norms, linear layers, an activation,
residual sums), so a traced copy sees those operations instead of one opaque module. The
forward is PyTorch's reference path in evaluation mode (dropout is the identity); the
modules' own fast path computes the same numbers, which LRP checks on every call.
"""

from __future__ import annotations

import torch
from torch import nn


class PlainEncoderLayer(nn.Module):
    """``nn.TransformerEncoderLayer`` as its operations (sharing its submodules)."""

    def __init__(self, layer: nn.TransformerEncoderLayer) -> None:
        super().__init__()
        self.self_attn, self.linear1, self.linear2 = layer.self_attn, layer.linear1, \
            layer.linear2
        self.norm1, self.norm2, self.norm_first = layer.norm1, layer.norm2, layer.norm_first
        self.activation = layer.activation

    def forward(self, src: torch.Tensor, src_mask=None, src_key_padding_mask=None,
                is_causal: bool = False) -> torch.Tensor:
        x = src
        if self.norm_first:
            x = x + self._attend(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._feed(self.norm2(x))
        x = self.norm1(x + self._attend(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._feed(x))

    def _attend(self, x, mask, padding, is_causal) -> torch.Tensor:
        return self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=padding,
                              need_weights=False, is_causal=is_causal)[0]

    def _feed(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.activation(self.linear1(x)))


class PlainEncoder(nn.Module):
    """``nn.TransformerEncoder`` as its layers in turn and its final norm."""

    def __init__(self, encoder: nn.TransformerEncoder) -> None:
        super().__init__()
        self.layers = nn.ModuleList(PlainEncoderLayer(layer) if isinstance(
            layer, nn.TransformerEncoderLayer) else layer for layer in encoder.layers)
        self.norm = encoder.norm

    def forward(self, src: torch.Tensor, mask=None, src_key_padding_mask=None,
                is_causal: bool | None = None) -> torch.Tensor:
        x = src
        for layer in self.layers:
            x = layer(x, mask, src_key_padding_mask, bool(is_causal))
        return x if self.norm is None else self.norm(x)


def write_out_transformers(model: nn.Module) -> int:
    """Replace every ``nn.TransformerEncoder`` / ``nn.TransformerEncoderLayer`` inside
    ``model`` (a copy: it is changed) by its written-out twin; returns how many."""
    swapped, done = 0, []
    for name, module in list(model.named_modules()):
        if not name or type(module) not in (nn.TransformerEncoder, nn.TransformerEncoderLayer):
            continue
        if any(name.startswith(d + ".") for d in done):  # inside an encoder written out
            continue
        done.append(name)
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        plain = PlainEncoder(module) if isinstance(module, nn.TransformerEncoder) \
            else PlainEncoderLayer(module)
        setattr(parent, attr, plain)
        swapped += 1
    return swapped
