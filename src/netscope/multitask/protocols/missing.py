"""Missing feature values, filled from training rows only: each numeric column with gaps
in the training rows gets its training median and a 0/1 missing-indicator column (so a model
can learn that missingness itself tells something); a test-only gap is filled with the
median. Families with their own handling (trees) get the gaps as NaN instead."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Imputer:
    columns: np.ndarray  # indices of columns with gaps in the training rows
    medians: np.ndarray  # (d,) training medians (0 where a column has no training value)

    @classmethod
    def fit(cls, X_train: np.ndarray) -> Imputer:
        gaps = np.isnan(X_train)
        with np.errstate(all="ignore"):
            med = np.array([np.median(c[~np.isnan(c)]) if (~np.isnan(c)).any() else 0.0
                            for c in X_train.T]) if gaps.any() else np.zeros(X_train.shape[1])
        return cls(np.flatnonzero(gaps.any(0)), med)

    def transform(self, X: np.ndarray, fill: bool = True) -> np.ndarray:
        """The columns (gaps filled, or left NaN when ``fill`` is False) and then one
        indicator column per column that had training gaps."""
        gaps = np.isnan(X)
        out = np.where(gaps, self.medians, X) if fill and gaps.any() else X
        return np.hstack([out, gaps[:, self.columns].astype(np.float64)])

    def names(self, feature_names: list[str]) -> list[str]:
        return [*feature_names, *(f"{feature_names[c]} is missing" for c in self.columns)]

    def notes(self, X: np.ndarray, feature_names: list[str]) -> list[str]:
        """One line per column with gaps in X: how many cells, and what fills them."""
        counts = np.isnan(X).sum(0)
        return [f"{feature_names[c]}: {counts[c]} missing cell(s) filled with the training "
                f"median {self.medians[c]:.4g}"
                + (" plus a missing-indicator column" if c in self.columns else "")
                for c in np.flatnonzero(counts)]
