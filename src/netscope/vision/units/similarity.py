"""Which units of a layer are alike: by what they do over the dataset (the correlation of
their pooled activations, from the streaming sums) and, for a convolution's filters, by
what they are (the cosine of their weights), the lecture's "is it similar to other
filters?" asked both ways."""

from __future__ import annotations

import numpy as np
from torch import nn

from netscope.vision.core.capture import LayerRef


def cluster_order(corr: np.ndarray) -> np.ndarray:
    """Units in the leaf order of average-linkage clustering on 1 - correlation, so alike
    units sit together in the heat map."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    n = corr.shape[0]
    if n < 3:
        return np.arange(n)
    dist = np.clip(1 - corr, 0, 2)
    dist = (dist + dist.T) / 2
    np.fill_diagonal(dist, 0)
    return leaves_list(linkage(squareform(dist, checks=False), "average")).astype(np.int64)


def most_similar(matrix: np.ndarray, unit: int, n: int = 5) -> list[tuple[int, float]]:
    """The ``n`` other units with the largest similarity to ``unit`` (ties: lower index)."""
    row = matrix[unit].astype(np.float64).copy()
    row[unit] = -np.inf
    order = np.lexsort((np.arange(len(row)), -row))
    return [(int(j), float(row[j])) for j in order[:n] if np.isfinite(row[j])]


def filter_weights(model: nn.Module, layer: str,
                   units: int) -> tuple[str, np.ndarray] | None:
    """The name and (units, fan-in) weights of the convolution that makes the layer's
    channels: the layer itself, or the last Conv2d inside it with that many output
    channels; None when no convolution makes them (a norm or attention layer)."""
    ref = LayerRef.parse(layer)
    module = dict(model.named_modules()).get(ref.name)
    if module is None or ref.port != "output":
        return None
    convs = [(f"{ref.name}.{n}" if n else ref.name, m) for n, m in module.named_modules()
             if isinstance(m, nn.Conv2d) and m.out_channels == units]
    if not convs:
        return None
    name, conv = convs[-1]
    return name, conv.weight.detach().float().reshape(units, -1).cpu().numpy()


def weight_cosine(weights: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(weights, axis=1, keepdims=True)
    unit = weights / np.where(norm > 0, norm, 1)
    return np.clip(unit @ unit.T, -1, 1)
