"""What the gallery page of an explain run shows: which rows, and their maps over the
images at the model's input size (the page itself is drawn by ``render.explain_page``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from netscope.vision.core.heatmaps import upsample
from netscope.vision.core.host import host
from netscope.vision.datasets.store import RUN_FILE, load_maps, read_parts
from netscope.vision.methods.registry import METHODS
from netscope.vision.models.images import load_image
from netscope.vision.models.zoo import LoadedModel


def pick_rows(table: pd.DataFrame, n: int = 24) -> pd.DataFrame:
    """Up to ``n`` explained rows: an even sample in file order, then the least confident."""
    ok = table[table["status"] == "ok"]
    if ok.empty:
        return ok
    even = ok.iloc[np.unique(np.linspace(0, len(ok) - 1, min(len(ok), n * 3 // 4)).round()
                             .astype(int))]
    unsure = ok.nsmallest(n - len(even), "probability")
    return pd.concat([even, unsure[~unsure["file"].isin(even["file"])]])


def gallery(lm: LoadedModel, folder: str | Path, out: str | Path
            ) -> tuple[pd.DataFrame, list[tuple[str, np.ndarray, np.ndarray]], dict]:
    """The run's table (sorted by file), (file, RGB crop the model saw, map in [0, 1] at
    that size; LRP's signed relevance in [-1, 1]) for the rows ``pick_rows`` chooses, and
    the run's settings."""
    table = read_parts(out).sort_values("file", kind="stable")
    settings = json.loads((Path(out) / RUN_FILE).read_text())
    pictures, shards = [], {}
    size = (lm.preprocess.size,) * 2
    for _, row in pick_rows(table).iterrows():
        if row["shard"] not in shards:
            shards[row["shard"]] = load_maps(out, row["shard"])[1]
        small = torch.from_numpy(shards[row["shard"]][int(row["map_index"])].astype(np.float32))
        signed = _signed(settings)  # stored in [-1, 1]: keep its sign
        heat = host(upsample(small[None], size, "none" if signed else "max")[0])
        rgb = lm.preprocess.image(load_image(Path(folder) / row["file"]))
        pictures.append((row["file"], rgb, heat))
    return table, pictures, {**settings, "signed": _signed(settings)}


def _signed(settings: dict) -> bool:
    """Whether the run's method draws signed maps (relevance), from the registry."""
    m = METHODS.get(settings.get("method", ""))
    return bool(m and m.signed)
