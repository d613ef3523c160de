"""Learning a dictionary from a layer's activation samples (an (n, C) array, in memory or
memory-mapped from the sample pass), with checkpoints: a run killed at any moment and
started again continues from its last checkpoint and ends with the same dictionary as an
uninterrupted run (batches come from seeded per-epoch orders, checkpoints sit at epoch
boundaries).

Samples are divided by one scale (their root mean square entry), kept with the
dictionary, so one learning rate suits every layer.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from netscope.errors import NetscopeError
from netscope.vision.concepts.dictionaries import (
    METHODS,
    NMF,
    ArchetypalSAE,
    BatchTopKSAE,
    Dictionary,
    TopKSAE,
    nmf_atoms_step,
    nmf_codes_step,
)

Progress = Callable[[str], None]
BLOCK = 8192  # samples read at once from a memory-mapped array
DEAD_AFTER = 2048  # a feature that fired on none of this many samples (or half an epoch)
# is dead: the auxiliary loss works on it


@dataclass(frozen=True)
class LearnSettings:
    method: str = "topk-sae"
    features: int = 32
    top_k: int | None = None  # SAE codes kept per sample (default: features // 8, >= 1)
    epochs: int = 30  # SAE passes over the samples; NMF: iterations
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    anchors: int | None = None  # archetypal-sae: k-means anchor points (default 4 x K)
    aux: float = 1 / 32  # weight of the auxiliary loss that revives dead features (0: none)

    def check(self, samples: int, channels: int) -> None:
        if self.method not in METHODS:
            raise NetscopeError(f"dictionary method must be one of {', '.join(METHODS)}, got "
                                f"{self.method!r}.")
        if self.features < 1:
            raise NetscopeError(f"--features must be at least 1, got {self.features}.")
        if self.features > samples:
            raise NetscopeError(f"--features {self.features} is more than the {samples} "
                                f"activation samples; use more images (or positions per "
                                f"image) or fewer features.")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise NetscopeError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise NetscopeError(f"learning rate must be a number > 0, got {self.lr}.")

    @property
    def k(self) -> int:
        return self.top_k if self.top_k is not None else max(1, self.features // 8)


@dataclass
class Learned:
    """A dictionary, the scale its samples were divided by, and how training went."""

    model: Dictionary
    scale: float
    losses: list[float]  # mean squared error (scaled samples) per epoch / iteration

    def encode(self, acts: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model.eval().encode(acts.float() / self.scale)

    def reconstruct(self, acts: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model.eval().reconstruct(acts.float() / self.scale) * self.scale


def sample_scale(samples) -> float:
    """Root mean square entry of the samples (1 when they are all zero)."""
    total, count = 0.0, 0
    for block in _blocks(samples):
        total += float((block.double() ** 2).sum())
        count += block.numel()
    rms = math.sqrt(total / max(count, 1))
    return rms if rms > 0 else 1.0


def learn(samples, settings: LearnSettings, checkpoint: str | Path | None = None,
          progress: Progress | None = None, start: Dictionary | None = None) -> Learned:
    """The dictionary of ``samples`` (n, C); ``start`` replaces the seeded initialization
    (same method). ``checkpoint``: a file kept up to date at every epoch boundary."""
    n, channels = samples.shape
    settings.check(n, channels)
    if not all(np.isfinite(b.numpy()).all() for b in _blocks(samples)):
        raise NetscopeError("the activation samples hold NaN or infinity; check the model "
                            "and the layer (an overflowing float16 layer?).")
    say = progress or (lambda message: None)
    scale = sample_scale(samples)
    if settings.method == "nmf":
        return _learn_nmf(samples, settings, scale, checkpoint, say, start)
    return _learn_sae(samples, settings, scale, checkpoint, say, start)


def build(settings: LearnSettings, channels: int, samples=None, scale: float = 1.0
          ) -> Dictionary:
    """The seeded, untrained dictionary of ``settings`` (archetypal: anchors from
    ``samples``)."""
    torch.manual_seed(settings.seed)
    if settings.method == "topk-sae":
        return TopKSAE(channels, settings.features, settings.k)
    if settings.method == "batchtopk-sae":
        return BatchTopKSAE(channels, settings.features, settings.k)
    if settings.method == "archetypal-sae":
        points = anchor_points(samples, settings, scale)
        torch.manual_seed(settings.seed)
        return ArchetypalSAE(channels, settings.features, settings.k, points)
    raise NetscopeError(f"no seeded start for {settings.method!r}.")


def anchor_points(samples, settings: LearnSettings, scale: float,
                  most: int = 20_000) -> torch.Tensor:
    """k-means centroids of (a seeded subset of) the scaled samples: the points the
    archetypal atoms mix."""
    from sklearn.cluster import KMeans

    n = samples.shape[0]
    count = settings.anchors or 4 * settings.features
    rng = np.random.default_rng(settings.seed)
    rows = np.sort(rng.choice(n, min(n, most), replace=False))
    X = np.asarray(samples[rows], dtype=np.float64) / scale
    count = min(count, len(X))
    if count < settings.features:
        raise NetscopeError(f"archetypal-sae: {len(X)} samples are too few for "
                            f"{settings.features} features.")
    km = KMeans(count, n_init=1, random_state=settings.seed).fit(X)
    return torch.from_numpy(km.cluster_centers_).float()


def _learn_sae(samples, settings, scale, checkpoint, say, start) -> Learned:
    n, channels = samples.shape
    model = start if start is not None else build(settings, channels, samples, scale)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    losses: list[float] = []
    first = 0
    idle = torch.zeros(settings.features)  # samples since each feature last fired
    saved = _resume(checkpoint, settings)
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        losses, first = list(saved["losses"].tolist()), int(saved["epoch"])
        idle = saved["idle"]
        say(f"{settings.method}: resumed at epoch {first} of {settings.epochs}")
    model.train()
    dead_after = max(DEAD_AFTER, n // 2)
    for epoch in range(first, settings.epochs):
        order = np.random.default_rng([settings.seed, epoch]).permutation(n)
        total = 0.0
        for lo in range(0, n, settings.batch_size):
            rows = np.sort(order[lo:lo + settings.batch_size])
            x = torch.as_tensor(np.asarray(samples[rows]), dtype=torch.float32) / scale
            dead = idle >= dead_after if settings.aux else None
            loss, fired = sae_step(model, opt, x, settings.aux, dead)
            idle = torch.where(fired, 0.0, idle + len(rows))
            total += loss * len(rows)
        losses.append(total / n)
        _save(checkpoint, settings, model, opt, losses, epoch + 1, idle)
        say(f"{settings.method}: epoch {epoch + 1}/{settings.epochs}, reconstruction error "
            f"{losses[-1]:.4g}")
    return Learned(model.eval(), scale, losses)


def sae_step(model: TopKSAE, opt: torch.optim.Optimizer, x: torch.Tensor, aux: float = 0.0,
             dead: torch.Tensor | None = None) -> tuple[float, torch.Tensor]:
    """One Adam step on the batch's mean squared reconstruction error (gradient norm
    clipped to 1, as overcomplete's ``train_sae``), plus, with ``aux`` > 0 and features
    ``dead`` (not fired for a while), Gao et al.'s auxiliary loss: the dead features' top
    codes must reconstruct what the live ones miss, so gradient reaches them again.
    Returns the reconstruction loss before the step and which features fired."""
    opt.zero_grad()
    pre, z, x_hat = model(x)
    loss = (x - x_hat).square().mean()
    total = loss
    if aux and dead is not None and dead.any():
        k = min(int(dead.sum()), 2 * model.top_k)
        dead_codes = torch.relu(pre) * dead.to(pre.dtype)
        top = torch.topk(dead_codes, k, dim=-1)
        z_dead = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        residual = (x - x_hat).detach()
        total = loss + aux * (residual - z_dead @ model.atoms()).square().mean() / \
            residual.square().mean().clamp_min(1e-12)
    total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return float(loss.detach()), (z > 0).any(0)


def _learn_nmf(samples, settings, scale, checkpoint, say, start) -> Learned:
    """scikit-learn's multiplicative updates, streamed: per iteration one pass updating
    each block's codes and summing U'X and U'U, then the atoms."""
    n, channels = samples.shape
    for block in _blocks(samples):
        if (block < 0).any():
            raise NetscopeError("nmf needs non-negative activations (a layer after a ReLU); "
                                "this layer has negative values: use --method topk-sae.")
    k = settings.features
    rng = np.random.default_rng(settings.seed)
    mean = float(sum(float(b.double().sum()) for b in _blocks(samples))) / (n * channels)
    avg = math.sqrt(max(mean / scale, 0.0) / k)
    D = start.atoms().detach().double() if start is not None else \
        torch.from_numpy(avg * np.abs(rng.standard_normal((k, channels))))
    Z = torch.from_numpy(avg * np.abs(rng.standard_normal((n, k))))
    losses: list[float] = []
    first = 0
    saved = _resume(checkpoint, settings)
    if saved is not None:
        D, Z = saved["atoms"], saved["codes"]
        losses, first = list(saved["losses"].tolist()), int(saved["epoch"])
        say(f"nmf: resumed at iteration {first} of {settings.epochs}")
    for it in range(first, settings.epochs):
        D, Z, error = nmf_iteration(samples, D, Z, scale)
        losses.append(error)
        if checkpoint is not None:
            _write(checkpoint, {"settings": _key(settings), "atoms": D, "codes": Z,
                                "losses": torch.tensor(losses), "epoch": it + 1})
        say(f"nmf: iteration {it + 1}/{settings.epochs}, reconstruction error {error:.4g}")
    return Learned(NMF(D.float()), scale, losses)


def nmf_iteration(samples, D: torch.Tensor, Z: torch.Tensor, scale: float = 1.0
                  ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One iteration over every sample: the codes (block by block), then the atoms.
    Returns the new atoms, codes and the mean squared error before the atoms' step."""
    k = D.shape[0]
    DDt = D @ D.T
    ZtX = torch.zeros_like(D)
    ZtZ = torch.zeros(k, k, dtype=D.dtype)
    sq = 0.0
    lo = 0
    for block in _blocks(samples):
        x = block.double() / scale
        rows = slice(lo, lo + len(x))
        z = nmf_codes_step(x, Z[rows], D, DDt)
        Z[rows] = z
        ZtX += z.T @ x
        ZtZ += z.T @ z
        sq += float(((x - z @ D) ** 2).sum())
        lo += len(x)
    D = nmf_atoms_step(D, ZtX, ZtZ)
    return D, Z, sq / (lo * D.shape[1])


def _blocks(samples, size: int = BLOCK):
    for lo in range(0, samples.shape[0], size):
        yield torch.from_numpy(np.array(samples[lo:lo + size]))  # a copy: memmaps are
        # read-only


def _key(settings: LearnSettings) -> str:
    import json

    return json.dumps(asdict(settings), sort_keys=True)


def _resume(checkpoint, settings: LearnSettings) -> dict | None:
    if checkpoint is None:
        return None
    for torn in Path(checkpoint).parent.glob(f".{Path(checkpoint).name}.*"):
        torn.unlink(missing_ok=True)  # a checkpoint half-written when a run was killed
    if not Path(checkpoint).is_file():
        return None
    try:
        saved = torch.load(checkpoint, weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged checkpoint: start again
        return None
    return saved if saved.get("settings") == _key(settings) else None


def _save(checkpoint, settings, model, opt, losses, epoch, idle) -> None:
    if checkpoint is None:
        return
    _write(checkpoint, {"settings": _key(settings), "model": model.state_dict(),
                        "optimizer": opt.state_dict(), "losses": torch.tensor(losses),
                        "epoch": epoch, "idle": idle})


def _write(path, payload: dict) -> None:
    """torch.save to a temporary file, renamed into place: whole or absent."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
