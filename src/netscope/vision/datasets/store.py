"""Results of a whole-dataset explanation, written so that an interrupted run loses at most
one shard and a rerun continues where it stopped.

Layout of the output folder:
- ``explain-run.json``: the settings that decide the results (model, method, layer, size,
  metrics); a rerun with other settings is refused instead of mixing two runs;
- ``maps/r{rank}-{k:05d}.npz``: one shard: ``files`` and ``maps`` (images, h, w) float16
  at the layer's resolution;
- ``parts/r{rank}-{k:05d}.csv``: the table rows of that shard (written after its maps);
- ``results.parquet`` (or ``.csv``): all parts joined by ``merge``.
Every file is written to a temporary name and renamed, so each shard is complete or absent.
Ranks of a distributed run write their own shards; one merge joins them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from netscope.errors import NetscopeError
from netscope.files.atomic import write_atomic, write_bytes, write_text
from netscope.files.ranked import ranked_files

RUN_FILE = "explain-run.json"
# finished parts only: pathlib's "*" also matches another rank's hidden temporary file
# (".r1-00000.csv.XXXX.csv"), half-written while this rank reads
PARTS = "r*-*.csv"
NEEDED = ("file", "status", "shard", "map_index")  # columns every part has
TEXT = ("file", "status", "error", "class_name", "predicted_name", "method", "layer", "shard")


class ExplainStore:
    """The output folder of one run (see the module docstring)."""

    def __init__(self, out: str | Path, settings: dict, rank: int = 0) -> None:
        self.out, self.rank, self.settings = Path(out), rank, settings
        self.maps_dir, self.parts_dir = self.out / "maps", self.out / "parts"
        self._check_settings(settings)
        mine = [index for _, r, index in part_files(self.parts_dir) if r == rank]
        self.next = max(mine, default=-1) + 1

    def _check_settings(self, settings: dict) -> None:
        path = self.out / RUN_FILE
        if path.is_file():
            try:
                before = json.loads(path.read_text())
            except (OSError, ValueError):
                raise NetscopeError(f"{path}: unreadable; remove the folder {self.out} or "
                                    f"choose another --out.") from None
            changed = [k for k in sorted(set(before) | set(settings))
                       if before.get(k) != settings.get(k)]
            if changed:
                k = changed[0]
                raise NetscopeError(
                    f"{self.out} holds results of another run ({k}: {before.get(k)!r} there, "
                    f"{settings.get(k)!r} now); rerun with the same settings to continue it, "
                    f"or choose another --out.")

    def done(self) -> set[str]:
        """Files that some finished shard (of any rank) already holds."""
        if not self.parts_dir.is_dir() or not any(self.parts_dir.glob(PARTS)):
            return set()
        return set(read_parts(self.out)["file"])

    def write_shard(self, rows: list[dict], files: list[str], maps: np.ndarray) -> str:
        """One shard: its maps, then its table rows (rows name the shard and map index). The
        run's settings are written with the first shard, so a run that failed before any
        result does not claim the folder."""
        if not (self.out / RUN_FILE).is_file():
            write_text(self.out / RUN_FILE, json.dumps(self.settings, indent=1, sort_keys=True))
        name = f"r{self.rank}-{self.next:05d}"
        self.next += 1
        buffer = io.BytesIO()
        np.savez_compressed(buffer, files=np.array(files, dtype=str), maps=maps)
        write_bytes(self.maps_dir / f"{name}.npz", buffer.getvalue())
        index = {f: i for i, f in enumerate(files)}
        table = pd.DataFrame([{**r, "shard": name if r["file"] in index else "",
                               "map_index": index.get(r["file"], -1)} for r in rows])
        write_atomic(self.parts_dir / f"{name}.csv", lambda p: table.to_csv(p, index=False))
        return name


def part_files(parts_dir: Path) -> list[tuple[Path, int, int]]:
    """(path, rank, index) of every finished part, in name order; a file in parts/ that
    netscope did not name is refused, not read or skipped silently."""
    return ranked_files(parts_dir, ".csv", "part")


def _read_part(path: Path) -> pd.DataFrame:
    """One part, or a clear error saying which file is damaged and what to do."""
    try:
        part = pd.read_csv(path, dtype={c: str for c in TEXT})
    except (UnicodeDecodeError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise NetscopeError(f"{path}: unreadable ({type(exc).__name__}); delete it and run "
                            f"the same explain command again: its images are redone.") from None
    missing = [c for c in NEEDED if c not in part.columns]
    if missing:
        raise NetscopeError(f"{path}: not a part of an explain run (no column "
                            f"{missing[0]!r}); move it out of {path.parent}.")
    return part


def read_parts(out: str | Path) -> pd.DataFrame:
    """All finished parts of a run, one row per file (the first shard that holds it)."""
    parts = [p for p, _, _ in part_files(Path(out) / "parts")]
    if not parts:
        raise NetscopeError(f"{out}: no finished shards (parts/*.csv) to merge.")
    rows = pd.concat([_read_part(p) for p in parts], ignore_index=True)
    for c in TEXT:  # a part of unreadable files only has no prediction columns
        rows[c] = rows[c].fillna("") if c in rows else ""
    return rows.drop_duplicates("file", keep="first")


def merge(out: str | Path, table: str = "auto") -> Path:
    """Join the parts into one table sorted by file: Parquet when pyarrow is installed
    (``auto``), else CSV."""
    rows = read_parts(out).sort_values("file", kind="stable").reset_index(drop=True)
    fmt = table_format(table)
    path = Path(out) / f"results.{fmt}"
    if fmt == "parquet":
        write_atomic(path, lambda p: rows.to_parquet(p, index=False))
    else:
        write_atomic(path, lambda p: rows.to_csv(p, index=False))
    stale = Path(out) / f"results.{'csv' if fmt == 'parquet' else 'parquet'}"
    stale.unlink(missing_ok=True)  # an earlier merge in the other format: now out of date
    return path


def table_format(table: str) -> str:
    if table not in ("auto", "parquet", "csv"):
        raise NetscopeError(f"table must be auto, parquet or csv, got {table!r}.")
    if table == "csv":
        return "csv"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        if table == "parquet":
            raise NetscopeError("Parquet tables need pyarrow: pip install 'netscope[parquet]', "
                                "or use --table csv.") from None
        return "csv"
    return "parquet"


def load_maps(out: str | Path, shard: str) -> tuple[list[str], np.ndarray]:
    """(files, maps) of one shard."""
    with np.load(Path(out) / "maps" / f"{shard}.npz") as z:
        return [str(f) for f in z["files"]], z["maps"]
