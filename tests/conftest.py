"""Shared fixtures: where the reference data lives, and tiny synthetic grouped problems."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root() -> Path:
    """$NETSCOPE_DATA, else ../shared/data beside the repository (as in CI)."""
    root = Path(os.environ.get("NETSCOPE_DATA", REPO.parent / "shared" / "data"))
    if not (root / "school" / "school_b.mat").is_file():
        pytest.skip(f"reference data not found in {root}; set NETSCOPE_DATA")
    return root


def tiny_tasks(n_tasks: int = 4, rows: int = 12, d: int = 3, seed: int = 0):
    """Rows from task-specific linear models w_t = w_0 + v_t, with unequal task sizes."""
    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=d)
    X, y, t = [], [], []
    for k in range(n_tasks):
        n = rows + k  # unequal sizes exercise padding
        Xk = rng.normal(size=(n, d))
        X.append(Xk)
        y.append(Xk @ (w0 + 0.5 * rng.normal(size=d)) + 0.1 * rng.normal(size=n))
        t.append(np.full(n, k))
    return np.vstack(X), np.concatenate(y), np.concatenate(t)


@pytest.fixture
def tiny():
    return tiny_tasks()
