"""Dictionaries of feature directions for one layer's activations (each spatial position or
token is a sample, a vector of the layer's C channels): x ~ z D, with D (K, C) the K
feature directions (atoms) and z >= 0 a sample's codes.

- ``nmf``: non-negative matrix factorization (CRAFT's), for layers after a ReLU: codes and
  atoms >= 0, by scikit-learn's multiplicative updates (Frobenius loss, ``solver="mu"``),
  one pass over the samples per iteration, so it streams: the codes are updated block by
  block and the atoms from two sums (U'X and U'U). Given the same start it equals
  scikit-learn's ``NMF(solver="mu", init="custom")``.
- ``topk-sae``: a sparse autoencoder whose code keeps the k largest ReLU encoder outputs of
  each sample (Gao et al. 2024), atoms kept at unit norm.
- ``batchtopk-sae``: the k x batch largest codes of a whole batch (Bussmann et al. 2024);
  at inference a threshold, the running mean of the batches' k x batch-th largest code.
- ``archetypal-sae``: the top-k encoder with atoms that are convex combinations of anchor
  points of the data (k-means centroids) plus a relaxation of norm <= delta, times a
  learned scale (Fel et al. 2025's relaxed archetypal SAE): atoms stay in the data's hull,
  so two runs find the same concepts.

The SAEs' parametrization and training step follow overcomplete 0.3 (a linear encoder with
bias, ReLU, codes times the dictionary, Adam on the mean squared error, gradient norm
clipped to 1): from the same start and batches they give the same loss to 1e-5
(benchmarks/peer_overcomplete.py).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.concepts import METHODS  # noqa: F401 - re-exported

EPS = float(torch.finfo(torch.float32).eps)  # scikit-learn's EPSILON for a zero denominator


class Dictionary(nn.Module):
    """K atoms over C channels and the map from samples to codes."""

    method: ClassVar[str] = ""

    def atoms(self) -> torch.Tensor:
        """(K, C) the feature directions."""
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(n, K) non-negative codes of samples x (n, C)."""
        raise NotImplementedError

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x) @ self.atoms()

    def responses(self, x: torch.Tensor) -> torch.Tensor:
        """(n, K) how strongly each feature's detector answers, before any sparsity
        selection: what the atlas ranks images by and gradient ascent raises (a top-k code
        is 0, and its gradient too, wherever another feature wins)."""
        return self.encode(x)

    @property
    def features(self) -> int:
        return int(self.atoms().shape[0])


# -- sparse autoencoders --------------------------------------------------------------------
class TopKSAE(Dictionary):
    """Top-k sparse autoencoder; ``top_k`` codes per sample stay non-zero."""

    method = "topk-sae"

    def __init__(self, channels: int, features: int, top_k: int) -> None:
        super().__init__()
        _check_k(top_k, features)
        self.top_k = top_k
        self.encoder = nn.Linear(channels, features)  # encoder, then dictionary: the same
        self.dictionary = UnitAtoms(features, channels)  # draws and parameter order as
        with torch.no_grad():  # overcomplete's; the encoder starts as the atoms' transpose
            self.encoder.weight.copy_(self.dictionary.weights)  # (Gao et al. 2024): every
            self.encoder.bias.zero_()  # feature is active from the start, fewer die

    def atoms(self) -> torch.Tensor:
        return self.dictionary()

    def pre_codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def sparsify(self, codes: torch.Tensor) -> torch.Tensor:
        top = torch.topk(codes, self.top_k, dim=-1)
        return torch.zeros_like(codes).scatter(-1, top.indices, top.values)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.sparsify(torch.relu(self.pre_codes(x)))

    def responses(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's output before its ReLU: positive where the feature fires, and with
        a gradient everywhere (a dead ReLU would stall gradient ascent on a grey start)."""
        return self.pre_codes(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(encoder outputs before the ReLU, codes, reconstruction) of a batch."""
        pre = self.pre_codes(x)
        z = self.sparsify(torch.relu(pre))
        return pre, z, z @ self.atoms()


class BatchTopKSAE(TopKSAE):
    """Batch top-k: a batch keeps its top_k x batch largest codes; at inference, codes at
    or above the running threshold."""

    method = "batchtopk-sae"

    def __init__(self, channels: int, features: int, top_k: int, momentum: float = 0.9) -> None:
        super().__init__(channels, features, top_k)
        self.momentum = momentum
        self.register_buffer("threshold", torch.tensor(float("nan")))

    def sparsify(self, codes: torch.Tensor) -> torch.Tensor:
        if self.training:
            keep = min(self.top_k * codes.shape[0], codes.numel())
            current = torch.topk(codes.reshape(-1), keep).values[-1]
            with torch.no_grad():
                old = self.threshold
                self.threshold = current.detach().clone() if torch.isnan(old) else \
                    self.momentum * old + (1 - self.momentum) * current.detach()
            cut = current
        else:
            if torch.isnan(self.threshold):
                raise NetscopeError("batchtopk-sae: not trained yet (no running threshold).")
            cut = self.threshold
        return codes * (codes >= cut).to(codes.dtype).detach()


class ArchetypalSAE(TopKSAE):
    """Top-k codes; atoms = relu-normalized convex weights over ``points`` plus a
    relaxation of norm <= ``delta``, times exp(multiplier)."""

    method = "archetypal-sae"

    def __init__(self, channels: int, features: int, top_k: int, points: torch.Tensor,
                 delta: float = 1.0) -> None:
        nn.Module.__init__(self)
        _check_k(top_k, features)
        if points.ndim != 2 or points.shape[1] != channels or points.shape[0] < features:
            raise NetscopeError(f"archetypal-sae: needs at least {features} anchor points of "
                                f"{channels} channels, got {tuple(points.shape)}.")
        self.top_k = top_k
        self.encoder = nn.Linear(channels, features)
        with torch.no_grad():  # the encoder starts on the anchors it mixes (tied start)
            self.encoder.weight.copy_(_unit_rows(points[:features].float()))
            self.encoder.bias.zero_()
        self.dictionary = ArchetypalAtoms(features, channels, points, delta)


class UnitAtoms(nn.Module):
    """K unit-norm atoms; while training, the stored weights are renormalized first (the
    projection step of projected gradient descent)."""

    def __init__(self, features: int, channels: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.empty(features, channels))
        nn.init.xavier_uniform_(self.weights)
        with torch.no_grad():
            self.weights.data = _unit_rows(self.weights)

    def forward(self) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                self.weights.data = _unit_rows(self.weights)
            return self.weights
        return _unit_rows(self.weights)


class ArchetypalAtoms(nn.Module):
    """Atoms = (relu-normalized mix of the points + relaxation of norm <= delta) times
    exp(multiplier); while training the constraints are applied to the stored values."""

    def __init__(self, features: int, channels: int, points: torch.Tensor,
                 delta: float) -> None:
        super().__init__()
        self.delta = delta
        self.register_buffer("points", points.detach().clone())
        self.mix = nn.Parameter(torch.eye(features, points.shape[0]))
        self.relax = nn.Parameter(torch.zeros(features, channels))
        self.multiplier = nn.Parameter(torch.tensor(0.0))

    def forward(self) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                W = torch.relu(self.mix)
                self.mix.data = W / (W.sum(-1, keepdim=True) + 1e-8)
                norm = self.relax.norm(dim=-1, keepdim=True)
                self.relax.data *= torch.clamp(self.delta / norm, max=1)
            return (self.mix @ self.points + self.relax) * torch.exp(self.multiplier)
        W = torch.relu(self.mix)
        W = W / (W.sum(-1, keepdim=True) + 1e-8)
        norm = self.relax.norm(dim=-1, keepdim=True)
        relax = self.relax * torch.clamp(self.delta / norm, max=1)
        return (W @ self.points + relax) * torch.exp(self.multiplier)


# -- non-negative matrix factorization --------------------------------------------------------
class NMF(Dictionary):
    """Atoms (K, C) >= 0; a sample's codes are found by multiplicative updates with the
    atoms fixed (``encode``), as scikit-learn's ``transform``."""

    method = "nmf"

    def __init__(self, atoms: torch.Tensor, encode_steps: int = 200) -> None:
        super().__init__()
        self.register_buffer("dictionary", atoms.detach().clone())
        self.encode_steps = encode_steps

    def atoms(self) -> torch.Tensor:
        return self.dictionary

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes minimizing |x - z D|^2 over z >= 0 (multiplicative updates from a start
        of sqrt(mean(x) / K), scikit-learn's for ``transform``)."""
        if (x < 0).any():
            raise NetscopeError("nmf: the layer's activations hold negative values; NMF needs "
                                "a non-negative layer (after a ReLU) or an SAE method.")
        k = self.dictionary.shape[0]
        z = torch.full((x.shape[0], k), math.sqrt(max(float(x.detach().mean()), 0.0) / k),
                       dtype=x.dtype)
        DDt = self.dictionary @ self.dictionary.T
        XDt = x @ self.dictionary.T
        for _ in range(self.encode_steps):
            z = z * XDt / _nonzero(z @ DDt)
        return z


def nmf_codes_step(x: torch.Tensor, z: torch.Tensor, D: torch.Tensor,
                   DDt: torch.Tensor) -> torch.Tensor:
    """One multiplicative update of a block's codes (scikit-learn's W step)."""
    return z * (x @ D.T) / _nonzero(z @ DDt)


def nmf_atoms_step(D: torch.Tensor, ZtX: torch.Tensor, ZtZ: torch.Tensor) -> torch.Tensor:
    """One multiplicative update of the atoms from the two sums over every sample
    (scikit-learn's H step)."""
    return D * ZtX / _nonzero(ZtZ @ D)


def _nonzero(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t == 0, torch.full_like(t, EPS), t)


def _unit_rows(w: torch.Tensor) -> torch.Tensor:
    return w / (torch.norm(w, p=2, dim=1, keepdim=True) + 1e-8)


def _check_k(top_k: int, features: int) -> None:
    if not 1 <= top_k <= features:
        raise NetscopeError(f"top-k must be from 1 to the number of features ({features}), "
                            f"got {top_k}.")
