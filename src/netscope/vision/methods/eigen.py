"""Eigen-CAM (Muhammad and Yeasin 2020): each image's activations (h*w positions x K
channels) projected on their first singular vector; class-agnostic and gradient-free.
KPCA-CAM (Karmani et al. 2024, pytorch-grad-cam's ``KPCA_CAM``): the same with kernel PCA
(scikit-learn's ``KernelPCA``, one component) on the centred activations, so a non-linear
main pattern can show.

``centre=False`` (default, as the paper's description) decomposes the activations as they
are, so the map follows where the dominant pattern is strong; ``centre=True`` subtracts
each channel's mean over positions first (as pytorch-grad-cam does), so the map shows where
the pattern deviates most from the image's average, which on a photo filled by its object
can point at the background instead. The singular vector's sign is arbitrary; it is chosen
so the map correlates positively with the activation strength (the L2 norm over channels at
each position): the map points at what the layer responds to.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps, top_classes
from netscope.vision.core.layer_choice import default_layer
from netscope.vision.core.targets import TargetLike
from netscope.vision.core.token_grid import Reshape, as_grid


@checked_images
def eigen_cam(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
              layer: str | LayerRef | None = None, normalize: str = "max",
              centre: bool = False, reshape: Reshape | None = None) -> Heatmaps:
    """Eigen-CAM maps; ``targets`` is accepted for the common signature and ignored (the
    map is the same for every class); ``classes`` in the result are the top-1 classes."""
    layer = LayerRef.parse(layer or default_layer(model, x))
    with capture(model, [layer]) as rec, torch.no_grad():
        logits = model(x)
        A = as_grid(model, rec[layer], tuple(x.shape[-2:]), str(layer), reshape)
    n, _, h, w = A.shape
    m = A.flatten(2).transpose(1, 2).double()  # (N, h*w, K)
    strength = m.norm(dim=2)  # (N, h*w)
    if centre:
        m = m - m.mean(1, keepdim=True)
    proj = first_singular_projection(m)
    maps = F.relu(oriented(proj, strength)).to(A.dtype).view(n, h, w)
    return Heatmaps(normalize_maps(maps, normalize), logits, None, top_classes(logits),
                    str(layer), "eigencam", normalize)


KERNELS = ("sigmoid", "rbf", "poly", "cosine", "linear")


@checked_images
def kpca_cam(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
             layer: str | LayerRef | None = None, normalize: str = "max",
             kernel: str = "sigmoid", kernel_gamma: float | None = None,
             reshape: Reshape | None = None) -> Heatmaps:
    """KPCA-CAM maps (module docstring); ``kernel_gamma``: the kernel's coefficient (None:
    scikit-learn's 1 / channels); class-agnostic as Eigen-CAM."""
    from sklearn.decomposition import KernelPCA

    if kernel not in KERNELS:
        raise NetscopeError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}.")
    layer = LayerRef.parse(layer or default_layer(model, x))
    with capture(model, [layer]) as rec, torch.no_grad():
        logits = model(x)
        A = as_grid(model, rec[layer], tuple(x.shape[-2:]), str(layer), reshape)
    n, _, h, w = A.shape
    m = A.flatten(2).transpose(1, 2).double().cpu()  # (N, h*w, K)
    strength = m.norm(dim=2)
    m = m - m.mean(1, keepdim=True)
    pca = KernelPCA(n_components=1, kernel=kernel, gamma=kernel_gamma)
    proj = torch.stack([torch.from_numpy(pca.fit_transform(mi.numpy())[:, 0].copy())
                        for mi in m])
    maps = F.relu(oriented(proj, strength)).to(A.dtype).view(n, h, w).to(A.device)
    return Heatmaps(normalize_maps(maps, normalize), logits, None, top_classes(logits),
                    str(layer), "kpcacam", normalize)


def oriented(proj: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """A projection (N, positions) with its arbitrary sign chosen so it correlates
    positively with ``strength``: the map points at what the layer responds to."""
    agree = ((proj - proj.mean(1, keepdim=True))
             * (strength - strength.mean(1, keepdim=True))).sum(1)
    return proj * torch.where(agree < 0, -1.0, 1.0).to(proj.dtype)[:, None]


def first_singular_projection(m: torch.Tensor) -> torch.Tensor:
    """m @ v1 for each (rows x cols) matrix, v1 its first right singular vector, from the
    eigenvectors of the smaller Gram matrix: ten times faster than an SVD of 7x7x1280
    activations, and never a (h*w)^2 matrix for large early-layer maps."""
    if m.shape[1] <= m.shape[2]:  # m m^T u = s^2 u and m v = s u
        vals, vecs = torch.linalg.eigh(m @ m.transpose(1, 2))
        return vecs[..., -1] * vals[:, -1:].clamp(min=0).sqrt()
    vecs = torch.linalg.eigh(m.transpose(1, 2) @ m)[1]
    return (m @ vecs[..., -1:])[..., 0]
