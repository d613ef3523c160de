"""A whole atlas, start to finish: the dataset pass (resumable, torchrun-ready), the merged
statistics, similarity and circuits, the units' pictures (kept per layer, so a rerun with
the same picture settings reuses them) and the tables. The site is drawn on top of the
result by ``render.atlas_site.save_site`` from ``vision.units.site``'s views."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from netscope.errors import NetscopeError
from netscope.files.atomic import write_bytes
from netscope.vision.models.zoo import LoadedModel
from netscope.vision.units.atlas import Atlas, build_atlas, layer_slug
from netscope.vision.units.atlas_run import AtlasSettings, PassSummary, record_folder
from netscope.vision.units.output import write_tables
from netscope.vision.units.pictures import picture_config, unit_pictures


@dataclass(frozen=True)
class PictureSettings:
    param: str = "fourier"
    steps: int | None = None  # None: the parametrization's preset
    diverse: int = 4  # pictures in each unit's diversity set (0: none)
    diversity: float = 0.5
    seed: int = 0

    def check(self) -> None:
        if self.param not in ("fourier", "phase", "pixel"):
            raise NetscopeError(f"unknown parametrization {self.param!r}: use fourier, phase "
                                f"or pixel.")
        if self.diverse == 1 or self.diverse < 0:
            raise NetscopeError(f"--diverse must be 0 (none) or at least 2, got {self.diverse}.")
        if self.steps is not None and self.steps < 1:
            raise NetscopeError(f"--picture-steps must be at least 1, got {self.steps}.")


@dataclass
class AtlasRun:
    summary: PassSummary
    atlas: Atlas | None  # None on ranks other than 0
    tables: dict[str, Path]


def make_atlas(lm: LoadedModel, root: str | Path, out: str | Path, settings: AtlasSettings,
               pictures: PictureSettings | None = PictureSettings(), circuits: bool = True,
               table: str = "auto", progress: Callable[[str], None] | None = None,
               rank: int | None = None, world: int | None = None) -> AtlasRun:
    """Build the atlas of the images under ``root`` in ``out`` (see the module docstring)."""
    if pictures is not None:
        pictures.check()
    say = progress or (lambda message: None)
    summary = record_folder(lm, root, out, settings, say, rank, world)
    if summary.state is None:  # another rank merges
        return AtlasRun(summary, None, {})
    if len(summary.state.images) == len(summary.state.unreadable):
        raise NetscopeError(f"{root}: none of the {len(summary.files)} image files could be "
                            f"read; see {Path(out) / 'shards'} or the errors above.")
    atlas = build_atlas(lm, root, summary.files, summary.state, summary.layouts, say, circuits)
    atlas.relevance_how = settings.relevance
    if pictures is not None:
        for name, la in atlas.layers.items():
            la.pictures = _pictures(lm, out, name, la.units, pictures, atlas.spectrum, say)
    return AtlasRun(summary, atlas, write_tables(atlas, out, table))


def _pictures(lm, out, layer, units, ps: PictureSettings, spectrum, say) -> dict[str, np.ndarray]:
    key = json.dumps({"model": lm.name, "layer": layer, **asdict(ps)}, sort_keys=True)
    path = Path(out) / "pictures" / f"{layer_slug(layer)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    say(f"atlas: pictures of {layer} reused from {path}")
                    return {k: z[k] for k in z.files if k != "key"}
        except (OSError, ValueError, KeyError):
            pass  # damaged or from another version: made again
    cfg = picture_config(ps.param, ps.steps, ps.seed)
    made = unit_pictures(lm, layer, units, cfg, ps.diverse, ps.diversity,
                         spectrum if ps.param == "phase" else None, say)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, key=np.array(key), **made)
    write_bytes(path, buffer.getvalue())
    return made
