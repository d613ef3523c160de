"""Explain every image of a folder tree: DataLoader workers decode, batches run on the
model's device, results go to resumable shards (``explain_store``), progress shows
images/s. Under ``torchrun`` each rank takes every world-th file and writes its own shards;
rank 0 merges once all ranks are done (a gloo/NCCL barrier), or ``merge`` joins them later.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from netscope.errors import NetscopeError
from netscope.vision.core.batched import class_scores
from netscope.vision.core.capture import capture
from netscope.vision.core.host import host
from netscope.vision.core.targets import resolve
from netscope.vision.datasets.image_files import (
    ImageFiles,
    RateLine,
    dataset_files,
    default_workers,
    loader,
)
from netscope.vision.datasets.store import ExplainStore, merge
from netscope.vision.methods.registry import METHODS, names
from netscope.vision.metrics.choices import BULK_DEFAULTS
from netscope.vision.metrics.faithfulness import deletion, insertion
from netscope.vision.models.classes import class_label
from netscope.vision.models.zoo import LoadedModel

DATASET_METHODS = names("dataset")
DATASET_METRICS = ("deletion", "insertion")
LABELS = ("top1", "folder")  # explain each image's predicted class, or its folder's class


@dataclass(frozen=True)
class DatasetSettings:
    method: str = "gradcam"
    # the method's settings by name (the registry's), over BULK_DEFAULTS where it takes them
    method_settings: Mapping[str, Any] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    steps: int = 20  # deletion/insertion steps
    batch_size: int = 16
    workers: int = field(default_factory=default_workers)
    shard_size: int = 1024
    table: str = "auto"
    labels: str = "top1"

    def check(self) -> None:
        if self.labels not in LABELS:
            raise NetscopeError(f"labels must be one of {', '.join(LABELS)}, got "
                                f"{self.labels!r}.")
        if self.method not in DATASET_METHODS:
            raise NetscopeError(f"unknown method {self.method!r}; choose from "
                                f"{', '.join(DATASET_METHODS)}.")
        bad = [m for m in self.metrics if m not in DATASET_METRICS]
        if bad:
            raise NetscopeError(f"unknown metric {bad[0]!r}; choose from "
                                f"{', '.join(DATASET_METRICS)}.")
        METHODS[self.method].check(self.method_settings)
        for name in ("batch_size", "shard_size", "steps"):
            if getattr(self, name) < 1:
                raise NetscopeError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.workers < 0:
            raise NetscopeError(f"workers must be 0 or more, got {self.workers}.")

    @property
    def layer(self) -> str | None:
        return self.method_settings.get("layer")

    def for_method(self, lm: LoadedModel | None = None) -> dict[str, Any]:
        """The keywords the method runs with (those it takes)."""
        m = METHODS[self.method]
        return m.accepted({"batch_size": self.batch_size, **BULK_DEFAULTS,
                           **self.method_settings,
                           **m.from_input(None if lm is None else lm.preprocess.bounds())})

    def identity(self, lm: LoadedModel) -> dict:
        """What decides the results: a rerun must match it to continue the run (the
        method's every setting, its defaults included; as the run file holds it)."""
        effective = METHODS[self.method].effective(self.for_method())
        effective.pop("batch_size", None)
        doc = {"model": lm.name, "size": lm.preprocess.size, "method": self.method,
               "layer": self.layer, "settings": effective, "metrics": list(self.metrics),
               "steps": self.steps, "labels": self.labels}
        return json.loads(json.dumps(doc, default=str))


@dataclass
class DatasetSummary:
    files: int  # this rank's share of the tree
    already: int  # done by an earlier run
    explained: int
    unreadable: int
    seconds: float
    table: Path | None  # the merged table (rank 0 of a finished run)
    correct: int = 0  # with folder labels: images whose top-1 class is their folder's

    @property
    def images_per_second(self) -> float:
        return (self.explained + self.unreadable) / self.seconds if self.seconds > 0 else 0.0

    def _repr_html_(self) -> str:
        from netscope.render.notebook import fragment, table_html

        rows = [("images in this share", self.files), ("done by an earlier run", self.already),
                ("explained now", self.explained), ("unreadable (skipped)", self.unreadable),
                ("seconds", f"{self.seconds:.1f}"),
                ("images per second", f"{self.images_per_second:.1f}"),
                ("table", self.table or "not merged here")]
        if self.correct:
            rows.append(("top-1 equals the folder's class", self.correct))
        return fragment("<p>Dataset explanation run</p>" + table_html(("", ""), rows))


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) when run alone."""
    try:
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    except ValueError:
        raise NetscopeError("RANK and WORLD_SIZE must be whole numbers (as torchrun sets "
                            "them).") from None


def explain_folder(lm: LoadedModel, root: str | Path, out: str | Path,
                   settings: DatasetSettings = DatasetSettings(),
                   progress: Callable[[str], None] | None = None,
                   rank: int | None = None, world: int | None = None) -> DatasetSummary:
    """Explain every image under ``root`` into ``out`` (see the module docstring)."""
    settings.check()
    env_rank, env_world = distributed_rank()
    rank, world = env_rank if rank is None else rank, env_world if world is None else world
    say = progress or (lambda message: None)
    files = dataset_files(root)
    labels = folder_labels(lm, files) if settings.labels == "folder" else None
    mine = list(range(rank, len(files), world))
    store = ExplainStore(out, settings.identity(lm), rank)
    done = store.done()
    todo = [i for i in mine if files[i] not in done]
    say(f"explain: {len(mine)} images for rank {rank} of {world}, {len(mine) - len(todo)} "
        f"already done, {len(todo)} to go ({settings.method}, batch {settings.batch_size}, "
        f"{settings.workers} decoding workers)")
    start = time.perf_counter()
    counts = _run(lm, root, files, labels, todo, store, settings, say, start)
    seconds = time.perf_counter() - start
    table = _finish(out, settings, rank, world)
    return DatasetSummary(len(mine), len(mine) - len(todo), counts[0], counts[1], seconds, table,
                          counts[2])


def folder_labels(lm: LoadedModel, files: list[str]) -> list[int]:
    """Each file's class from its first folder (the ImageFolder layout: ROOT/CLASS/...),
    a class name or index of the model; all checked before any work."""
    from netscope.vision.models.classes import resolve_class
    from netscope.vision.models.zoo import n_classes

    loose = [f for f in files if "/" not in f]
    if loose:
        raise NetscopeError(f"--labels folder needs every image inside a class folder "
                            f"(ROOT/CLASS/image); {loose[0]} is not.")
    n, found, unknown = n_classes(lm), {}, []
    for name in sorted({f.split("/", 1)[0] for f in files}):
        try:
            found[name] = resolve_class(name, lm.class_names, n)
        except NetscopeError as exc:
            unknown.append(f"{name} ({exc})")
    if unknown:
        raise NetscopeError(f"{len(unknown)} class folder(s) are not classes of the model: "
                            f"{'; '.join(unknown[:3])}. Name folders by class name or index.")
    return [found[f.split("/", 1)[0]] for f in files]


def _run(lm, root, files, labels, todo, store, settings, say, start) -> tuple[int, int, int]:
    chosen = METHODS[settings.method]
    kwargs = settings.for_method(lm)

    def explain(model, x, t):
        return chosen(model, x, t, **kwargs)

    data = ImageFiles(root, files, lm.preprocess)
    rows: list[dict] = []
    names: list[str] = []
    maps: list[np.ndarray] = []
    explained = unreadable = correct = 0
    line = RateLine("explain", len(todo), say, start)
    pin = torch.device(lm.preprocess.device).type == "cuda"
    for idx, x, errors in loader(data, todo, settings.batch_size, settings.workers, pin):
        wanted = None if labels is None else [labels[i] for i in idx.tolist()]
        batch_rows, batch_maps = _batch(lm, [files[i] for i in idx.tolist()], x, errors,
                                        explain, settings, wanted)
        correct += sum(1 for r in batch_rows if r.get("correct") is True)
        rows += batch_rows
        for r, m in zip([r for r in batch_rows if r["status"] == "ok"], batch_maps,
                        strict=True):
            names.append(r["file"])
            maps.append(m)
        explained += len(batch_maps)
        unreadable += len(batch_rows) - len(batch_maps)
        if len(rows) >= settings.shard_size:
            _flush(store, rows, names, maps)
        line.tick(explained + unreadable, unreadable)
    if rows:
        _flush(store, rows, names, maps)
    return explained, unreadable, correct


def _flush(store: ExplainStore, rows: list[dict], names: list[str],
           maps: list[np.ndarray]) -> None:
    stacked = np.stack(maps).astype(np.float16) if maps else np.zeros((0, 1, 1), np.float16)
    store.write_shard(list(rows), list(names), stacked)
    rows.clear()
    names.clear()
    maps.clear()


def _batch(lm, names, x, errors, explain, settings,
           wanted: list[int] | None = None) -> tuple[list[dict], list[np.ndarray]]:
    """Table rows for a batch (unreadable files included) and the maps of the good ones:
    each explains the top-1 class, or the class in ``wanted`` (folder labels)."""
    ok = [e == "" for e in errors]
    rows = [{"file": n, "status": "unreadable", "error": e, "class_index": -1,
             "class_name": "", "probability": float("nan"), "method": settings.method,
             "layer": settings.layer or ""} for n, e, good in zip(names, errors, ok,
                                                                    strict=True) if not good]
    if not any(ok):
        return rows, []
    device, dtype = torch.device(lm.preprocess.device), getattr(torch, lm.preprocess.dtype)
    xs = x.to(device, non_blocking=True)[torch.tensor(ok, device=device)].to(dtype)
    with capture(lm.model, []), torch.no_grad():
        logits = lm.model(xs)
    chosen = None if wanted is None else [w for w, g in zip(wanted, ok, strict=True) if g]
    t = resolve(logits, chosen)
    soft = logits.float().softmax(1)
    probs = class_scores(logits.float(), t, "prob")
    top = soft.max(1)
    heat = explain(lm.model, xs, t)
    scores = _metrics(lm, xs, heat.maps, t, settings)
    good = [n for n, g in zip(names, ok, strict=True) if g]
    for j, n in enumerate(good):
        k, p = int(t.labels[j]), int(top.indices[j])
        row = {"file": n, "status": "ok", "error": "", "class_index": k,
               "class_name": class_label(lm.class_names, k), "probability": float(probs[j]),
               "predicted_index": p, "predicted_name": class_label(lm.class_names, p),
               "predicted_probability": float(top.values[j]), "method": settings.method,
               "layer": settings.layer or "", **{m: float(v[j]) for m, v in scores.items()}}
        if wanted is not None:
            row["correct"] = p == k
        rows.append(row)
    signed = heat.signed()  # LRP: kept with its sign; the metrics ranked the positive map
    return rows, list(host(heat.maps if signed is None else signed))


def _metrics(lm, x, maps, t, settings) -> dict[str, torch.Tensor]:
    out = {}
    for metric in settings.metrics:
        curve = (deletion if metric == "deletion" else insertion)(
            lm.model, x, maps, t, settings.steps, "blur", settings.batch_size)
        out[f"{metric}_auc"] = curve.auc
    return out


def _finish(out, settings: DatasetSettings, rank: int, world: int) -> Path | None:
    """Merge the parts: alone at once; in a distributed run rank 0, after every rank."""
    return on_rank_zero(lambda: merge(out, settings.table), rank, world)


def on_rank_zero(work: Callable, rank: int, world: int):
    """``work()`` once every rank has finished its share: alone at once; in a distributed
    run on rank 0 between two barriers (nobody leaves before its result exists); None on
    the other ranks."""
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        dist.barrier()
        result = work() if rank == 0 else None
        dist.barrier()
        dist.destroy_process_group()
        return result
    return work()
