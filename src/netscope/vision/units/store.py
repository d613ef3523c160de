"""The atlas's output folder while the dataset pass runs, so an interrupted run loses at
most one shard and a rerun continues where it stopped.

- ``atlas-run.json``: what decides the results (model, input size, layers, K, the number of
  images); a rerun with other settings is refused instead of mixing two atlases;
- ``shards/r{rank}-{k:05d}.npz``: the streaming state (``streaming.UnitState``) of every
  chosen layer over one shard's images, with the indices of the images it covers and the
  files that could not be read. Written to a temporary name and renamed: complete or absent.

Merging every shard (any ranks, any order) gives the state of the whole dataset.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from netscope.errors import NetscopeError
from netscope.files.atomic import write_bytes, write_text
from netscope.files.ranked import ranked_files
from netscope.vision.units.streaming import UnitState

RUN_FILE = "atlas-run.json"


@dataclass
class PassState:
    """Everything the pass keeps: per-layer unit states, the images covered, the files that
    could not be read, and the summed amplitude spectrum of the images (for phase-only
    feature visualization)."""

    layers: dict[str, UnitState]
    images: list[int] = field(default_factory=list)
    unreadable: dict[int, str] = field(default_factory=dict)
    spectrum: np.ndarray | None = None
    spectrum_count: int = 0

    def merge(self, other: PassState) -> PassState:
        spectrum = (other.spectrum if self.spectrum is None else self.spectrum
                    if other.spectrum is None else self.spectrum + other.spectrum)
        return PassState({k: v.merge(other.layers[k]) for k, v in self.layers.items()},
                         self.images + other.images, {**self.unreadable, **other.unreadable},
                         spectrum, self.spectrum_count + other.spectrum_count)

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {
            "layers": np.array(list(self.layers), dtype=str),
            "images": np.array(self.images, np.int64),
            "unreadable_images": np.array(list(self.unreadable), np.int64),
            "unreadable_errors": np.array(list(self.unreadable.values()), dtype=str),
            "spectrum_count": np.array(self.spectrum_count, np.int64)}
        if self.spectrum is not None:
            arrays["spectrum"] = self.spectrum
        for i, state in enumerate(self.layers.values()):
            arrays.update(state.save(f"layer{i}"))
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_file(cls, path: Path) -> PassState:
        try:
            with np.load(path, allow_pickle=False) as z:
                names = [str(n) for n in z["layers"]]
                stored = {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError) as exc:
            raise NetscopeError(f"{path}: not a readable atlas shard ({type(exc).__name__}); "
                                f"delete it and run the same atlas command again: its images "
                                f"are redone.") from None
        layers = {n: UnitState.load(stored, f"layer{i}") for i, n in enumerate(names)}
        errors = dict(zip((int(i) for i in stored["unreadable_images"]),
                          (str(e) for e in stored["unreadable_errors"]), strict=True))
        return cls(layers, [int(i) for i in stored["images"]], errors,
                   stored.get("spectrum"), int(stored["spectrum_count"]))


class AtlasStore:
    """Shards of one atlas run (see the module docstring)."""

    def __init__(self, out: str | Path, settings: dict, rank: int = 0,
                 run_file: str = RUN_FILE, what: str = "an atlas") -> None:
        """``run_file`` and ``what``: another pass with the same shards (a dictionary's
        activation samples) keeps its own identity file and name."""
        self.out, self.rank, self.settings = Path(out), rank, settings
        self.run_file = run_file
        self.shards = self.out / "shards"
        check_settings(self.out, settings, run_file, what)
        mine = [index for _, r, index in shard_files(self.shards) if r == rank]
        self.next = max(mine, default=-1) + 1
        for torn in self.shards.glob(f".r{rank}-*.npz.*") if self.shards.is_dir() else []:
            torn.unlink(missing_ok=True)  # a shard half-written when a run was killed

    def done(self) -> set[int]:
        """Indices of the images some finished shard (of any rank) covers."""
        covered: set[int] = set()
        for path, _, _ in shard_files(self.shards):
            with np.load(path, allow_pickle=False) as z:
                covered |= {int(i) for i in z["images"]}
        return covered

    def write(self, state) -> None:
        """A finished shard of ``state`` (anything with ``to_bytes``)."""
        if not (self.out / self.run_file).is_file():
            write_text(self.out / self.run_file, json.dumps(self.settings, indent=1,
                                                            sort_keys=True))
        write_bytes(self.shards / f"r{self.rank}-{self.next:05d}.npz", state.to_bytes())
        self.next += 1


def check_settings(out: Path, settings: dict, run_file: str = RUN_FILE,
                   what: str = "an atlas") -> None:
    path = out / run_file
    if not path.is_file():
        return
    try:
        before = json.loads(path.read_text())
    except (OSError, ValueError):
        raise NetscopeError(f"{path}: unreadable; remove the folder {out} or choose another "
                            f"--out.") from None
    changed = [k for k in sorted(set(before) | set(settings)) if before.get(k) != settings.get(k)]
    if changed:
        k = changed[0]
        raise NetscopeError(f"{out} holds {what} of another run ({k}: {before.get(k)!r} "
                            f"there, {settings.get(k)!r} now); rerun with the same settings "
                            f"to continue it, or choose another --out.")


def shard_files(shards: Path) -> list[tuple[Path, int, int]]:
    """(path, rank, index) of every finished shard; a stray file is refused, not read."""
    return ranked_files(shards, ".npz", "shard")


def merged(out: str | Path) -> PassState:
    """The state of every finished shard together, read one shard at a time."""
    paths = [p for p, _, _ in shard_files(Path(out) / "shards")]
    if not paths:
        raise NetscopeError(f"{out}: no finished atlas shards (shards/*.npz).")
    total = PassState.from_file(paths[0])
    for path in paths[1:]:
        total = total.merge(PassState.from_file(path))
    return total
