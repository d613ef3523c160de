"""Writing an atlas: its tables (Parquet when pyarrow is installed, else CSV) and its site,
every file atomically, the index page last so a site with an index is complete."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from netscope.files.atomic import write_atomic, write_bytes
from netscope.vision.datasets.store import table_format
from netscope.vision.models.images import load_image
from netscope.vision.models.zoo import LoadedModel
from netscope.vision.units.atlas import Atlas

TABLES = ("units", "unit_stats", "files")


def write_tables(atlas: Atlas, out: str | Path, table: str = "auto") -> dict[str, Path]:
    fmt = table_format(table)
    frames = {"units": atlas.examples(), "unit_stats": atlas.statistics(),
              "files": atlas.file_table()}
    paths = {}
    for name, frame in frames.items():
        paths[name] = _write_table(frame, Path(out) / f"{name}.{fmt}", fmt)
        other = Path(out) / f"{name}.{'csv' if fmt == 'parquet' else 'parquet'}"
        other.unlink(missing_ok=True)  # an earlier run's table in the other format
    return paths


def _write_table(frame: pd.DataFrame, path: Path, fmt: str) -> Path:
    if fmt == "parquet":
        return write_atomic(path, lambda p: frame.to_parquet(p, index=False))
    return write_atomic(path, lambda p: frame.to_csv(p, index=False))


def write_site(atlas: Atlas, lm: LoadedModel, root: str | Path, out: str | Path,
               progress: Callable[[str], None] | None = None) -> Path:
    """The static site in ``out`` (``render.atlas_site``); returns its index page."""
    from netscope.render.atlas_site import write_site as render_site

    out = Path(out)
    pending: list[tuple[str, bytes]] = []

    def emit(rel: str, data: bytes) -> None:
        if rel == "index.html":
            pending.append((rel, data))  # the index last: a site with one is complete
        else:
            write_bytes(out / rel, data)

    def view(i: int) -> np.ndarray:
        rgb = lm.preprocess.image(load_image(Path(root) / atlas.files[i]))
        return rgb.astype(np.float32) / 255 if rgb.dtype == np.uint8 else rgb.astype(np.float32)

    render_site(atlas, emit, view, lm.class_names, progress)
    for rel, data in pending:
        write_bytes(out / rel, data)
    return out / "index.html"
