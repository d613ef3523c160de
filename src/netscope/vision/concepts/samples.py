"""The activation samples a dictionary learns from: one pass over a folder tree (the atlas's
loader, batches, decoding workers and device), keeping from each image the layer's channel
vectors at up to P grid positions, chosen by a generator seeded with the image's index (the
same positions whatever the batch, rank or resume), or, with ``crops`` (CRAFT's samples, Fel
et al. 2023, as craft-xai cuts them), from every crop of that many pixels (stride 80% of it)
resized to the model's input: the layer's activations averaged over the crop's grid, one
sample per crop. Shards are written as the pass goes
(resumable after kill -9; ranks of a ``torchrun`` job take every world-th image), and then
merged, in image order, into one array on disk that learning reads memory-mapped: memory
stays that of one shard and one batch, however many images.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from netscope.errors import NetscopeError
from netscope.files.atomic import write_bytes
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.datasets.explain_run import on_rank_zero
from netscope.vision.datasets.image_files import (
    ImageFiles,
    RateLine,
    default_workers,
    device_batches,
)
from netscope.vision.models.zoo import LoadedModel
from netscope.vision.units.atlas_run import plan_pass, probe_layers
from netscope.vision.units.store import shard_files

RUN_FILE = "dictionary-run.json"
SAMPLES = "samples.npy"  # (n, C) float32, merged, read memory-mapped
ORIGIN = "samples-origin.npz"  # each sample's image index and grid position


@dataclass(frozen=True)
class SampleSettings:
    layer: str
    positions: int = 16  # per image (0: every position of the grid)
    batch_size: int = 16
    workers: int = field(default_factory=default_workers)
    shard_size: int = 256  # images per shard
    seed: int = 0
    crops: int = 0  # crop size in input pixels (0: grid positions are the samples)

    def check(self, size: int | None = None) -> None:
        if self.positions < 0:
            raise NetscopeError(f"--positions must be 0 (all) or more, got {self.positions}.")
        if self.crops < 0 or (size is not None and self.crops > size):
            raise NetscopeError(f"--crops must be between 1 and the model's input size "
                                f"{size or ''} (or 0: grid positions), got {self.crops}.")
        for name in ("batch_size", "shard_size"):
            if getattr(self, name) < 1:
                raise NetscopeError(f"{name} must be at least 1, got {getattr(self, name)}.")

    def identity(self, lm: LoadedModel, images: int) -> dict:
        made = {"model": lm.name, "size": lm.preprocess.size, "layer": self.layer,
                "positions": self.positions, "seed": self.seed, "images": images}
        return {**made, "crops": self.crops} if self.crops else made


@dataclass
class SampleShard:
    images: list[int] = field(default_factory=list)  # every image the shard covers
    x: list[np.ndarray] = field(default_factory=list)
    origin: list[np.ndarray] = field(default_factory=list)  # (m, 2) image index, position
    unreadable: dict[int, str] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, images=np.array(self.images, np.int64),
                 x=np.concatenate(self.x) if self.x else np.zeros((0, 0), np.float32),
                 origin=np.concatenate(self.origin) if self.origin else
                 np.zeros((0, 2), np.int64),
                 unreadable_images=np.array(list(self.unreadable), np.int64),
                 unreadable_errors=np.array(list(self.unreadable.values()), dtype=str))
        return buffer.getvalue()


@dataclass
class Samples:
    """The merged samples: ``x`` (n, C) memory-mapped, ``origin`` (n, 2)."""

    x: np.ndarray
    origin: np.ndarray
    files: list[str]
    unreadable: dict[int, str]
    seconds: float = 0.0


def positions_of(image: int, cells: int, count: int, seed: int) -> np.ndarray:
    """The grid positions sampled from one image, sorted (all of them when count is 0 or
    at least the grid's size)."""
    if count == 0 or count >= cells:
        return np.arange(cells)
    return np.sort(np.random.default_rng([seed, image]).choice(cells, count, replace=False))


def sample_folder(lm: LoadedModel, root: str | Path, out: str | Path,
                  settings: SampleSettings, progress: Callable[[str], None] | None = None,
                  rank: int | None = None, world: int | None = None) -> Samples | None:
    """Sample every image under ``root`` into ``out`` (see the module docstring); the
    merged samples on rank 0 (None on the other ranks)."""
    settings.check(lm.preprocess.size)
    say = progress or (lambda message: None)
    layouts, _ = probe_layers(lm, (settings.layer,))
    plan = plan_pass(root, out, lambda n: settings.identity(lm, n), rank, world, RUN_FILE,
                     "a dictionary")
    files, mine, todo = plan.files, plan.mine, plan.todo
    say(f"samples: {len(mine)} images for rank {plan.rank} of {plan.world}, "
        f"{len(mine) - len(todo)} "
        f"already done, {len(todo)} to go (layer {settings.layer}, "
        + (f"crops of {settings.crops} px)" if settings.crops else
           f"{settings.positions or 'all'} positions per image)"))
    start = time.perf_counter()
    _stream(lm, root, files, todo, plan.store, settings, layouts[settings.layer], say, start)
    seconds = time.perf_counter() - start
    merged = on_rank_zero(lambda: merge_samples(out, files), plan.rank, plan.world)
    if merged is not None:
        merged.seconds = seconds
    return merged


def _stream(lm, root, files, todo, store, settings, layout, say, start) -> None:
    ref = LayerRef.parse(settings.layer)
    data = ImageFiles(root, files, lm.preprocess)
    device, dtype = torch.device(lm.preprocess.device), getattr(torch, lm.preprocess.dtype)
    shard, in_shard, count = SampleShard(), 0, 0
    line = RateLine("samples", len(todo), say, start)
    for ids, xs, good, failed in device_batches(data, todo, settings.batch_size,
                                                settings.workers, device, dtype):
        shard.unreadable.update(failed)
        shard.images += [int(i) for i in ids]
        if xs is not None:
            sample_batch(lm, xs, good, ref, layout, settings, shard)
        in_shard += len(ids)
        count += len(ids)
        if in_shard >= settings.shard_size:
            store.write(shard)
            shard, in_shard = SampleShard(), 0
        line.tick(count, len(shard.unreadable))
    if in_shard:
        store.write(shard)


def sample_batch(lm: LoadedModel, xs: torch.Tensor, ids: np.ndarray, ref: LayerRef, layout,
                 settings: SampleSettings, shard: SampleShard) -> None:
    """One forward pass; each image's sampled positions (or crops) go to ``shard``."""
    if settings.crops:
        return _crop_batch(lm, xs, ids, ref, layout, settings, shard)
    with capture(lm.model, [ref]) as rec, torch.no_grad():
        lm.model(xs)
        grid = layout.to_grid(rec[ref]).float().flatten(2).cpu().numpy()  # (b, C, P)
    for image, acts in zip(ids, grid, strict=True):
        where = positions_of(int(image), acts.shape[1], settings.positions, settings.seed)
        shard.x.append(np.ascontiguousarray(acts[:, where].T, dtype=np.float32))
        shard.origin.append(np.column_stack([np.full(len(where), image), where]))


def crops_of(xs: torch.Tensor, crop: int) -> torch.Tensor:
    """Every crop of ``crop`` pixels at a stride of 80% of it (craft-xai's), resized to the
    images' size: (images x crops, 3, S, S), image-major."""
    stride = max(1, int(crop * 0.80))
    patches = torch.nn.functional.unfold(xs, kernel_size=crop, stride=stride)
    patches = patches.transpose(1, 2).reshape(-1, xs.shape[1], crop, crop)
    return torch.nn.functional.interpolate(patches, size=tuple(xs.shape[-2:]),
                                           mode="bilinear", align_corners=False)


def _crop_batch(lm, xs, ids, ref, layout, settings, shard) -> None:
    """Each image's crops through the model, their activations averaged over the grid."""
    crops = crops_of(xs, settings.crops)
    per_image = len(crops) // len(xs)
    pooled = []
    for lo in range(0, len(crops), settings.batch_size):
        with capture(lm.model, [ref]) as rec, torch.no_grad():
            lm.model(crops[lo:lo + settings.batch_size])
            pooled.append(layout.to_grid(rec[ref]).float().mean((2, 3)).cpu().numpy())
    pooled = np.concatenate(pooled).reshape(len(xs), per_image, -1)
    for image, acts in zip(ids, pooled, strict=True):
        shard.x.append(np.ascontiguousarray(acts, dtype=np.float32))
        shard.origin.append(np.column_stack([np.full(per_image, image),
                                             np.arange(per_image)]))


def merge_samples(out: str | Path, files: list[str]) -> Samples:
    """Every shard's samples in one array on disk, ordered by image and position (the
    same file whatever the ranks and resumes), written shard by shard."""
    out = Path(out)
    paths = [p for p, _, _ in shard_files(out / "shards")]
    if not paths:
        raise NetscopeError(f"{out}: no finished sample shards (shards/*.npz).")
    origins, channels, unreadable = [], None, {}
    for path in paths:
        with np.load(path, allow_pickle=False) as z:
            origins.append(z["origin"])
            if z["x"].size:
                channels = z["x"].shape[1]
            unreadable.update(zip((int(i) for i in z["unreadable_images"]),
                                  (str(e) for e in z["unreadable_errors"]), strict=True))
    origin = np.concatenate(origins)
    if channels is None or not len(origin):
        raise NetscopeError(f"{out}: no image could be read, so there are no activation "
                            f"samples.")
    order = np.lexsort((origin[:, 1], origin[:, 0]))
    dest = np.empty(len(order), np.int64)
    dest[order] = np.arange(len(order))
    tmp = out / f".{SAMPLES}.partial"
    x = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                  shape=(len(origin), channels))
    lo = 0
    for path in paths:
        with np.load(path, allow_pickle=False) as z:
            part = z["x"]
            x[dest[lo:lo + len(part)]] = part
            lo += len(part)
    x.flush()
    del x
    tmp.replace(out / SAMPLES)
    buffer = io.BytesIO()
    np.savez(buffer, origin=origin[order])
    write_bytes(out / ORIGIN, buffer.getvalue())
    return load_samples(out, files, unreadable)


def load_samples(out: str | Path, files: list[str], unreadable: dict[int, str] | None = None
                 ) -> Samples:
    out = Path(out)
    x = np.load(out / SAMPLES, mmap_mode="r")
    with np.load(out / ORIGIN, allow_pickle=False) as z:
        origin = z["origin"]
    return Samples(x, origin, files, unreadable or {})
