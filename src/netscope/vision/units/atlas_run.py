"""The atlas's one pass over a folder tree: DataLoader workers decode, batches run on the
model's device with the chosen layers recorded, and every unit's streaming state
(``streaming.py``) goes to resumable shards (``store.py``). Under ``torchrun`` each rank
takes every world-th file; rank 0 merges once every rank is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from netscope.errors import NetscopeError
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.token_grid import Layout, layout_for
from netscope.vision.datasets.explain_run import distributed_rank, on_rank_zero
from netscope.vision.datasets.image_files import (
    ImageFiles,
    RateLine,
    dataset_files,
    default_workers,
    device_batches,
)
from netscope.vision.models.zoo import LoadedModel
from netscope.vision.units import RELEVANCE
from netscope.vision.units.relevance import unit_relevance
from netscope.vision.units.store import RUN_FILE, AtlasStore, PassState, merged
from netscope.vision.units.streaming import UnitState

SPECTRUM_SIZE = 128  # the amplitude spectrum is kept at the feature visualizations' size


@dataclass(frozen=True)
class AtlasSettings:
    layers: tuple[str, ...]
    top_k: int = 9
    batch_size: int = 16
    workers: int = field(default_factory=default_workers)
    shard_size: int = 1024
    relevance: str | None = None  # also rank images by relevance: "gradient" or "lrp"

    def check(self) -> None:
        if not self.layers:
            raise NetscopeError("name at least one layer (--layers L1,L2).")
        if len(set(self.layers)) != len(self.layers):
            raise NetscopeError(f"a layer is named twice in {', '.join(self.layers)}.")
        for name in ("top_k", "batch_size", "shard_size"):
            if getattr(self, name) < 1:
                raise NetscopeError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.workers < 0:
            raise NetscopeError(f"workers must be 0 or more, got {self.workers}.")
        if self.relevance is not None and self.relevance not in RELEVANCE:
            raise NetscopeError(f"relevance must be one of {', '.join(RELEVANCE)}, got "
                                f"{self.relevance!r}.")

    def identity(self, lm: LoadedModel, images: int) -> dict:
        """What decides the results: a rerun must match it to continue the run."""
        made = {"model": lm.name, "size": lm.preprocess.size, "layers": list(self.layers),
                "top_k": self.top_k, "images": images}
        return made if self.relevance is None else {**made, "relevance": self.relevance}


@dataclass
class PassSummary:
    files: list[str]
    already: int
    recorded: int
    unreadable: int
    seconds: float
    state: PassState | None  # merged (rank 0 of a finished run)
    layouts: dict[str, Layout]

    @property
    def images_per_second(self) -> float:
        return (self.recorded + self.unreadable) / self.seconds if self.seconds > 0 else 0.0


@dataclass
class PassPlan:
    """What one rank of a resumable pass over a folder does: the files, the shard store,
    the images that are this rank's and those still to do."""

    files: list[str]
    store: AtlasStore
    mine: list[int]
    todo: list[int]
    rank: int
    world: int


def plan_pass(root, out, identity: Callable[[int], dict], rank: int | None,
              world: int | None, run_file: str = RUN_FILE,
              what: str = "an atlas") -> PassPlan:
    """This rank's share of the files under ``root`` (every world-th), less what finished
    shards in ``out`` cover; ``identity(images)`` is what decides the results."""
    env_rank, env_world = distributed_rank()
    rank, world = env_rank if rank is None else rank, env_world if world is None else world
    files = dataset_files(root)
    store = AtlasStore(out, identity(len(files)), rank, run_file, what)
    mine = list(range(rank, len(files), world))
    done = store.done()
    return PassPlan(files, store, mine, [i for i in mine if i not in done], rank, world)


def high_count(images: int, k: int) -> int:
    """How many of each unit's largest responses the top-1% share needs."""
    return max(k, -(-images // 100))


def record_folder(lm: LoadedModel, root: str | Path, out: str | Path, settings: AtlasSettings,
                  progress: Callable[[str], None] | None = None, rank: int | None = None,
                  world: int | None = None) -> PassSummary:
    """Stream every image under ``root`` through the model (see the module docstring)."""
    settings.check()
    say = progress or (lambda message: None)
    layouts, units = probe_layers(lm, settings.layers)
    plan = plan_pass(root, out, lambda n: settings.identity(lm, n), rank, world)
    files, mine, todo = plan.files, plan.mine, plan.todo
    say(f"atlas: {len(mine)} images for rank {plan.rank} of {plan.world}, "
        f"{len(mine) - len(todo)} "
        f"already done, {len(todo)} to go ({len(settings.layers)} layer(s), batch "
        f"{settings.batch_size}, {settings.workers} decoding workers)")
    start = time.perf_counter()
    fresh = lambda: PassState({n: UnitState(settings.top_k,  # noqa: E731
                                            high_count(len(files), settings.top_k), units[n])
                               for n in settings.layers})
    counts = _stream(lm, root, files, todo, plan.store, settings, layouts, fresh, say, start)
    seconds = time.perf_counter() - start
    state = _finish(out, plan.rank, plan.world)
    return PassSummary(files, len(mine) - len(todo), counts[0], counts[1], seconds, state,
                       layouts)


def probe_layers(lm: LoadedModel, layers: tuple[str, ...]) -> tuple[dict[str, Layout],
                                                                     dict[str, int]]:
    """Each layer's grid layout and unit count from one probe image; a layer that does not
    exist or has no grid is refused, naming the layers that have one."""
    from netscope.vision.core.layer_choice import grid_layers

    size = lm.preprocess.size
    probe = torch.zeros(1, 3, size, size, device=torch.device(lm.preprocess.device),
                        dtype=getattr(torch, lm.preprocess.dtype))
    usable = [g.name for g in grid_layers(lm.model, probe)]
    modules = dict(lm.model.named_modules())
    refs = [LayerRef.parse(name) for name in layers]
    for ref in refs:
        if ref.name not in modules or (ref.port == "output" and ref.name not in usable):
            why = "no such layer" if ref.name not in modules else "its output has no grid"
            raise NetscopeError(f"layer {ref} ({why}); layers with a spatial grid: "
                                f"{_listed(usable)}.")
    with capture(lm.model, refs) as rec, torch.no_grad():
        lm.model(probe)
        layouts = {name: layout_for(lm.model, rec[ref], (size, size), name)
                   for name, ref in zip(layers, refs, strict=True)}
        units = {name: int(layouts[name].to_grid(rec[ref]).shape[1])
                 for name, ref in zip(layers, refs, strict=True)}
    return layouts, units


def _listed(names: list[str], most: int = 30) -> str:
    if len(names) <= most:
        return ", ".join(names)
    return ", ".join(names[:most]) + f", ... ({len(names) - most} more)"


def _stream(lm, root, files, todo, store, settings, layouts, fresh, say, start):
    refs = {n: LayerRef.parse(n) for n in settings.layers}
    data = ImageFiles(root, files, lm.preprocess)
    device, dtype = torch.device(lm.preprocess.device), getattr(torch, lm.preprocess.dtype)
    state, in_shard, recorded, unreadable = fresh(), 0, 0, 0
    line = RateLine("atlas", len(todo), say, start)
    for ids, xs, good, failed in device_batches(data, todo, settings.batch_size,
                                                settings.workers, device, dtype):
        state.unreadable.update(failed)
        state.images += [int(i) for i in ids]
        if xs is not None:
            record_batch(lm, xs, good, refs, layouts, state, settings.relevance)
        recorded, unreadable = recorded + len(good), unreadable + len(failed)
        in_shard += len(ids)
        if in_shard >= settings.shard_size:
            store.write(state)
            state, in_shard = fresh(), 0
        line.tick(recorded + unreadable, unreadable)
    if in_shard:
        store.write(state)
    return recorded, unreadable


def record_batch(lm: LoadedModel, x: torch.Tensor, ids: np.ndarray, refs: dict[str, LayerRef],
                 layouts: dict[str, Layout], state: PassState,
                 relevance: str | None = None) -> None:
    """One forward pass with the layers recorded, reduced to per-unit numbers at once; with
    ``relevance``, one more pass with a backward for the units' relevance."""
    with capture(lm.model, list(refs.values())) as rec, torch.no_grad():
        lm.model(x)
        for name, ref in refs.items():
            grid = layouts[name].to_grid(rec[ref]).float()
            flat = grid.flatten(2)
            top = flat.max(2)
            w = grid.shape[-1]
            pos = top.indices.cpu().numpy()
            state.layers[name].update(top.values.cpu().numpy(), ids, pos // w, pos % w,
                                      flat.mean(2).cpu().numpy())
    if relevance is not None:
        for name, (share, y, x_) in unit_relevance(lm.model, x, refs, layouts,
                                                    relevance).items():
            state.layers[name].update_relevance(share, ids, y, x_)
    _add_spectrum(lm, x, state)


def _add_spectrum(lm: LoadedModel, x: torch.Tensor, state: PassState) -> None:
    """Sum of the images' per-channel amplitude spectra at the visualizations' size."""
    pictures = lm.preprocess.denormalize(x.float()).clamp(0, 1)
    small = F.interpolate(pictures, size=(SPECTRUM_SIZE, SPECTRUM_SIZE), mode="bilinear",
                          align_corners=False, antialias=True)
    amp = torch.fft.rfft2(small - small.mean((2, 3), keepdim=True), norm="ortho").abs()
    total = amp.sum(0).double().cpu().numpy()
    state.spectrum = total if state.spectrum is None else state.spectrum + total
    state.spectrum_count += x.shape[0]


def _finish(out, rank: int, world: int) -> PassState | None:
    """Merge the shards: alone at once; in a distributed run rank 0, after every rank."""
    return on_rank_zero(lambda: merged(out), rank, world)
