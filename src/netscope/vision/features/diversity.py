"""The diversity term of Olah, Mordvintsev and Schubert ("Feature Visualization", Distill
2017, section "Diversity"): pictures of the same unit, optimized together, are pushed
apart by subtracting the similarity of their styles, the cosine between the Gram matrices
of a layer's activations, so one unit's several facets show instead of one picture N
times."""

from __future__ import annotations

import torch


def gram_similarity(activations: torch.Tensor, copies: int) -> torch.Tensor:
    """Per picture, the mean cosine between its Gram matrix and those of the other
    ``copies - 1`` pictures of its group (consecutive groups of ``copies``)."""
    n = activations.shape[0]
    a = activations.flatten(2) if activations.dim() > 2 else activations[..., None]
    gram = a @ a.transpose(1, 2) / a.shape[-1]
    flat = torch.nn.functional.normalize(gram.flatten(1), dim=1).view(n // copies, copies, -1)
    cos = flat @ flat.transpose(1, 2)  # (groups, copies, copies)
    off = cos.sum(2) - cos.diagonal(dim1=1, dim2=2)
    return (off / (copies - 1)).reshape(n)
