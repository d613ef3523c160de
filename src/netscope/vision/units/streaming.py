"""What the atlas keeps of every unit while images stream past, in memory that grows with
the units and K, never with the number of images, and that merges exactly: two states of
disjoint image sets merge into the state of their union (shards of one run, ranks of a
torchrun job), in any order.

Per unit (channel) of one layer, an image's response is the unit's spatial maximum:
- the K strongest images (value, image index, grid position), ties to the lower index, so
  streaming top-K equals a full sort;
- running sums of the response (and of its positive part and its square), its extremes,
  how many images it fires on (maximum > 0), and a histogram on a fixed logarithmic grid;
- the M largest responses (M = max(K, 1% of the images)), for the share of the unit's
  activation that its top 1% of images take;
- for similarity, the sums of the spatially pooled (mean) activations and of their
  products, from which the correlation matrix follows;
- when the pass measures relevance, the K most relevant images (relevance maximization,
  Achtibat et al. 2023): the unit's share of the image's class relevance at the layer,
  and the position where its relevance is largest (``rel_*`` arrays, same tie rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# fixed histogram grid: 0, and 16 bins a decade from 1e-4 to 1e4 on either side
_DECADES = np.linspace(4, -4, 8 * 16 + 1)
EDGES = np.concatenate([-(10.0 ** _DECADES), [0.0], 10.0 ** _DECADES[::-1]])
BINS = len(EDGES) - 1


@dataclass
class UnitState:
    """The streaming state of one layer's units (see the module docstring)."""

    k: int
    m: int
    units: int
    n: int = 0
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.arrays:
            c, k = self.units, self.k
            self.arrays = {
                "top_value": np.full((c, k), -np.inf), "top_image": np.full((c, k), -1),
                "top_y": np.zeros((c, k), np.int64), "top_x": np.zeros((c, k), np.int64),
                "high": np.full((c, self.m), -np.inf),
                "sum": np.zeros(c), "sum_pos": np.zeros(c), "sum_sq_pos": np.zeros(c),
                "max": np.full(c, -np.inf), "min": np.full(c, np.inf),
                "fires": np.zeros(c, np.int64), "hist": np.zeros((c, BINS), np.int64),
                "pooled_sum": np.zeros(c), "pooled_products": np.zeros((c, c)),
            }

    def update(self, response: np.ndarray, images: np.ndarray, y: np.ndarray, x: np.ndarray,
               pooled: np.ndarray) -> None:
        """Add a batch: ``response``, ``y``, ``x`` and ``pooled`` are (batch, units), the
        spatial maximum, its grid position and the spatial mean; ``images`` (batch,) the
        images' indices in the run's file list."""
        a, r = self.arrays, response.astype(np.float64)
        b = r.shape[0]
        if b == 0:
            return
        self.n += b
        img = np.broadcast_to(images[None, :], (self.units, b))
        _keep_top(a, r.T, img, y.T, x.T, self.k)
        a["high"] = _largest(np.concatenate([a["high"], r.T], 1), self.m)
        pos = np.maximum(r, 0)
        a["sum"] += r.sum(0)
        a["sum_pos"] += pos.sum(0)
        a["sum_sq_pos"] += (pos**2).sum(0)
        a["max"] = np.maximum(a["max"], r.max(0))
        a["min"] = np.minimum(a["min"], r.min(0))
        a["fires"] += (r > 0).sum(0)
        bins = np.clip(np.searchsorted(EDGES, r, side="right") - 1, 0, BINS - 1)
        np.add.at(a["hist"], (np.broadcast_to(np.arange(self.units), r.shape), bins), 1)
        p = pooled.astype(np.float64)
        a["pooled_sum"] += p.sum(0)
        a["pooled_products"] += p.T @ p

    def update_relevance(self, share: np.ndarray, images: np.ndarray, y: np.ndarray,
                         x: np.ndarray) -> None:
        """Add a batch's relevance: ``share``, ``y``, ``x`` (batch, units), each unit's
        share of the image's relevance and its most relevant grid position."""
        self._ensure_relevance()
        img = np.broadcast_to(images[None, :], (self.units, len(images)))
        _keep_top(self.arrays, share.astype(np.float64).T, img, y.T, x.T, self.k, "rel")

    def _ensure_relevance(self) -> None:
        if "rel_value" not in self.arrays:
            c, k = self.units, self.k
            self.arrays.update({"rel_value": np.full((c, k), -np.inf),
                                "rel_image": np.full((c, k), -1),
                                "rel_y": np.zeros((c, k), np.int64),
                                "rel_x": np.zeros((c, k), np.int64)})

    @property
    def has_relevance(self) -> bool:
        return "rel_value" in self.arrays

    def merge(self, other: UnitState) -> UnitState:
        """The state of both image sets (they must be disjoint)."""
        if (other.k, other.m, other.units) != (self.k, self.m, self.units):
            raise ValueError("states of different atlases cannot merge")
        if self.has_relevance or other.has_relevance:  # a shard of unreadable images has none
            self._ensure_relevance()
            other._ensure_relevance()
        a, o = self.arrays, other.arrays
        out = UnitState(self.k, self.m, self.units, self.n + other.n)
        m = out.arrays
        for key in ("sum", "sum_pos", "sum_sq_pos", "fires", "hist", "pooled_sum",
                    "pooled_products"):
            m[key] = a[key] + o[key]
        m["max"], m["min"] = np.maximum(a["max"], o["max"]), np.minimum(a["min"], o["min"])
        m["high"] = _largest(np.concatenate([a["high"], o["high"]], 1), self.m)
        for kind in ("top", "rel") if self.has_relevance else ("top",):
            for key in ("value", "image", "y", "x"):
                m[f"{kind}_{key}"] = a[f"{kind}_{key}"].copy()
            _keep_top(m, o[f"{kind}_value"], o[f"{kind}_image"], o[f"{kind}_y"],
                      o[f"{kind}_x"], self.k, kind)
        return out

    def save(self, prefix: str) -> dict[str, np.ndarray]:
        meta = np.array([self.k, self.m, self.units, self.n], np.int64)
        return {f"{prefix}/meta": meta, **{f"{prefix}/{k}": v for k, v in self.arrays.items()}}

    @classmethod
    def load(cls, stored, prefix: str) -> UnitState:
        k, m, units, n = (int(v) for v in stored[f"{prefix}/meta"])
        arrays = {key.split("/", 1)[1]: np.asarray(stored[key]) for key in stored
                  if key.startswith(f"{prefix}/") and not key.endswith("/meta")}
        return cls(k, m, units, n, arrays)

    # what the tables show
    def statistics(self) -> dict[str, np.ndarray]:
        """Per unit: mean and largest response, the share of images it fires on, its
        lifetime sparseness and the share of its activation its top 1% of images take."""
        a, n = self.arrays, max(self.n, 1)
        mean_pos, mean_sq = a["sum_pos"] / n, a["sum_sq_pos"] / n
        with np.errstate(invalid="ignore", divide="ignore"):
            sparse = np.where(mean_sq > 0, (1 - mean_pos**2 / mean_sq), 0.0)
            if self.n > 1:
                sparse = sparse / (1 - 1 / self.n)
            top = max(1, math.ceil(self.n / 100))
            high = np.maximum(a["high"][:, :top], 0)
            high = np.where(np.isfinite(high), high, 0)
            share = np.where(a["sum_pos"] > 0, high.sum(1) / a["sum_pos"], 0.0)
        return {"mean": a["sum"] / n, "mean_pooled": a["pooled_sum"] / n, "max": a["max"],
                "fires": a["fires"] / n, "sparseness": np.clip(sparse, 0, 1),
                "top1_share": np.clip(share, 0, 1)}

    def correlation(self) -> np.ndarray:
        """Pearson correlation of the units' pooled activations over the images; a unit
        that never varies correlates 0 with the others (and 1 with itself)."""
        n = max(self.n, 1)
        mean = self.arrays["pooled_sum"] / n
        cov = self.arrays["pooled_products"] / n - np.outer(mean, mean)
        sd = np.sqrt(np.clip(np.diag(cov), 0, None))
        scale = np.outer(sd, sd)
        tiny = scale <= 1e-12 * max(float(scale.max(initial=0)), 1e-300)
        corr = np.where(tiny, 0.0, cov / np.where(tiny, 1, scale))
        np.fill_diagonal(corr, 1.0)
        return np.clip(corr, -1, 1)


def _largest(values: np.ndarray, m: int) -> np.ndarray:
    """The m largest per row, in decreasing order."""
    return -np.sort(-values, axis=1)[:, :m]


def _keep_top(a: dict, value, image, y, x, k: int, kind: str = "top") -> None:
    """Merge candidate (units, n) columns into the ``kind`` top-K arrays: larger value
    first, then the lower image index; empty slots (index -1) last."""
    v = np.concatenate([a[f"{kind}_value"], value], 1)
    i = np.concatenate([a[f"{kind}_image"], image], 1)
    ys = np.concatenate([a[f"{kind}_y"], y], 1)
    xs = np.concatenate([a[f"{kind}_x"], x], 1)
    empty = i < 0
    order = np.lexsort((np.where(empty, np.iinfo(np.int64).max, i), -np.where(empty, -np.inf, v)),
                       axis=1)[:, :k]
    a[f"{kind}_value"] = np.take_along_axis(v, order, 1)
    a[f"{kind}_image"] = np.take_along_axis(i, order, 1)
    a[f"{kind}_y"] = np.take_along_axis(ys, order, 1)
    a[f"{kind}_x"] = np.take_along_axis(xs, order, 1)
