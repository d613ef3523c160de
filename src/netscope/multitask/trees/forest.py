"""A fitted gradient-boosted forest as plain arrays, with its own vectorized predictor.

scikit-learn's fitted HistGradientBoostingRegressor is a pickle of private objects; netscope
saves models as tensors only (loaded with ``weights_only=True``), so the trees are exported
into flat node arrays and predicted here, level by level for all rows and trees at once.
``tests/multitask/test_boosted.py`` checks that this predictor equals scikit-learn's.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from netscope.errors import NetscopeError


@dataclass(frozen=True)
class Forest:
    """Nodes of all trees concatenated; ``roots`` index each tree's first node."""

    feature: np.ndarray  # (nodes,) int64
    threshold: np.ndarray  # (nodes,) float64: go left when x <= threshold
    left: np.ndarray  # (nodes,) int64, global node index
    right: np.ndarray  # (nodes,) int64
    is_leaf: np.ndarray  # (nodes,) bool
    value: np.ndarray  # (nodes,) float64, the learning rate already applied
    is_categorical: np.ndarray  # (nodes,) bool
    bitset: np.ndarray  # (nodes,) int64 row of ``cat_bits`` (categorical splits)
    cat_bits: np.ndarray  # (k, 8) uint32: category c goes left when bit c is set
    roots: np.ndarray  # (trees,) int64
    baseline: np.ndarray  # (1,) float64
    depth: np.ndarray  # (1,) int64, the deepest leaf
    missing_left: np.ndarray | None = None  # (nodes,) bool: where a missing value goes
    # (NaN, or a category not seen in fit); None in forests saved before it was kept

    @classmethod
    def from_sklearn(cls, model) -> Forest:
        """Export a fitted single-output HistGradientBoostingRegressor."""
        parts: dict[str, list] = {k: [] for k in ("feature", "threshold", "left", "right",
                                                  "is_leaf", "value", "is_categorical", "bitset",
                                                  "missing_left")}
        roots, bits, offset, depth = [], [], 0, 0
        for (tree,) in model._predictors:
            n = tree.nodes
            roots.append(offset)
            parts["feature"].append(n["feature_idx"].astype(np.int64))
            parts["threshold"].append(n["num_threshold"].astype(np.float64))
            parts["left"].append(n["left"].astype(np.int64) + offset)
            parts["right"].append(n["right"].astype(np.int64) + offset)
            parts["is_leaf"].append(n["is_leaf"].astype(bool))
            parts["value"].append(n["value"].astype(np.float64))
            parts["is_categorical"].append(n["is_categorical"].astype(bool))
            parts["missing_left"].append(n["missing_go_to_left"].astype(bool))
            parts["bitset"].append(n["bitset_idx"].astype(np.int64) + sum(len(b) for b in bits))
            bits.append(np.asarray(tree.raw_left_cat_bitsets, dtype=np.uint32).reshape(-1, 8))
            offset += len(n)
            depth = max(depth, int(n["depth"].max()))
        return cls(**{k: np.concatenate(v) for k, v in parts.items()},
                   cat_bits=np.concatenate(bits) if bits else np.zeros((0, 8), np.uint32),
                   roots=np.asarray(roots, np.int64),
                   baseline=np.asarray(model._baseline_prediction, np.float64).reshape(1),
                   depth=np.asarray([depth], np.int64))

    @classmethod
    def combine(cls, forests: list[Forest]) -> Forest:
        """One forest predicting the sum of ``forests`` (their trees side by side, their
        baselines added)."""
        nodes = np.cumsum([0] + [len(f.feature) for f in forests])
        bits = np.cumsum([0] + [len(f.cat_bits) for f in forests])
        cat = lambda name: np.concatenate([getattr(f, name) for f in forests])  # noqa: E731
        return cls(
            feature=cat("feature"), threshold=cat("threshold"),
            left=np.concatenate([f.left + o for f, o in zip(forests, nodes, strict=False)]),
            right=np.concatenate([f.right + o for f, o in zip(forests, nodes, strict=False)]),
            is_leaf=cat("is_leaf"), value=cat("value"), is_categorical=cat("is_categorical"),
            bitset=np.concatenate([f.bitset + b for f, b in zip(forests, bits, strict=False)]),
            cat_bits=np.concatenate([f.cat_bits for f in forests]),
            roots=np.concatenate([f.roots + o for f, o in zip(forests, nodes, strict=False)]),
            baseline=np.array([sum(float(f.baseline[0]) for f in forests)]),
            depth=np.array([max(int(f.depth[0]) for f in forests)]),
            missing_left=np.concatenate([f.missing_left if f.missing_left is not None else
                                         np.zeros(len(f.feature), bool) for f in forests]))

    def predict(self, X: np.ndarray, block: int = 1 << 18) -> np.ndarray:
        """The forest's raw prediction; rows x trees are walked in blocks of about ``block``
        cells, so memory stays bounded however many rows and trees there are."""
        out = np.full(X.shape[0], self.baseline[0])
        per = max(1, block // max(X.shape[0], 1))  # trees per block
        rows = max(1, block // max(min(per, self.roots.size), 1))
        for r in range(0, X.shape[0], rows):
            for k in range(0, self.roots.size, per):
                out[r:r + rows] += self._walk(X[r:r + rows], self.roots[k:k + per])
        return out

    def _walk(self, X: np.ndarray, roots: np.ndarray) -> np.ndarray:
        """Sum of the leaf values of the trees starting at ``roots`` for rows X."""
        node = np.broadcast_to(roots, (X.shape[0], roots.size)).copy()
        rows = np.arange(X.shape[0])[:, None]
        for _ in range(int(self.depth[0])):
            leaf = self.is_leaf[node]
            if leaf.all():
                break
            x = X[rows, self.feature[node]]
            left = x <= self.threshold[node]
            cat = self.is_categorical[node] & ~np.isnan(x)
            if cat.any():
                code = np.clip(x[cat], 0, 255).astype(np.int64)
                word = self.cat_bits[self.bitset[node[cat]], code // 32]
                left[cat] = (word >> (code % 32).astype(np.uint32)) & 1 == 1
            gap = np.isnan(x)
            if gap.any() and self.missing_left is not None:
                left[gap] = self.missing_left[node[gap]]
            node = np.where(leaf, node, np.where(left, self.left[node], self.right[node]))
        return self.value[node].sum(1)

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}{f.name}": torch.from_numpy(np.ascontiguousarray(
            getattr(self, f.name).astype(np.int64) if f.name == "cat_bits"
            else getattr(self, f.name))) for f in fields(self)
            if getattr(self, f.name) is not None}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], prefix: str) -> Forest:
        try:
            arrays = {f.name: state[f"{prefix}{f.name}"].numpy() for f in fields(cls)
                      if f.name != "missing_left"}
        except KeyError as exc:
            raise NetscopeError(f"saved forest is incomplete: no {exc.args[0]!r}.") from None
        arrays["cat_bits"] = arrays["cat_bits"].astype(np.uint32)
        gone = state.get(f"{prefix}missing_left")
        arrays["missing_left"] = None if gone is None else gone.numpy()
        return cls(**arrays)
