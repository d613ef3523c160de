"""Writing an atlas's tables (Parquet when pyarrow is installed, else CSV), atomically;
the site is drawn by ``render.atlas_site.save_site`` from ``vision.units.site``'s views."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from netscope.files.atomic import write_atomic
from netscope.vision.datasets.store import table_format
from netscope.vision.units.atlas import Atlas

TABLES = ("units", "unit_stats", "files", "units_by_relevance")


def write_tables(atlas: Atlas, out: str | Path, table: str = "auto") -> dict[str, Path]:
    fmt = table_format(table)
    frames = {"units": atlas.examples(), "unit_stats": atlas.statistics(),
              "files": atlas.file_table()}
    if atlas.relevance:
        frames["units_by_relevance"] = atlas.examples("relevance")
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
