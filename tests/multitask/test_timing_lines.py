"""Long runs say how long is left at their pace."""

import numpy as np
import pandas as pd

from netscope.data.tabular import load_table
from netscope.multitask import protocols
from netscope.multitask.comparison.results import compare
from netscope.timing import duration, time_left


def four_groups(tmp_path):
    """Four small groups of rows, written and loaded as a user's table."""
    rng = np.random.default_rng(0)
    rows = [{"g": g, "a": rng.normal(), "y": rng.normal() + i}
            for i, g in enumerate("pqrs") for _ in range(12)]
    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    return load_table(tmp_path / "d.csv", "g", "y")


def test_time_left_at_the_pace_so_far():
    assert time_left(30.0, 1, 10) == ", about 4 min left"  # 30 s a split, 9 to go
    assert time_left(30.0, 10, 10) == "" and time_left(0.0, 0, 10) == ""
    assert [duration(s) for s in (0.2, 42, 600, 9000)] == ["1 s", "42 s", "10 min", "2.5 h"]


def test_a_comparison_over_splits_says_how_long_is_left(tmp_path):
    data = four_groups(tmp_path)
    said = []
    protocol = protocols.new_tasks(data, folds=3)
    assert len(protocol.splits) == 3
    compare(data, protocol, families=["pooled-ridge"], progress=said.append)
    lines = [s for s in said if "splits done" in s]
    assert [s.split(",")[0] for s in lines] == ["1/3 splits done", "2/3 splits done"]
    assert all(s.endswith(" left") for s in lines)


def test_each_family_says_where_it_is_in_the_split(tmp_path):
    data = four_groups(tmp_path)
    said = []
    compare(data, protocols.lecture(data), families=["pooled-ridge", "mtl-ridge"],
            progress=said.append)
    starts = [s for s in said if ": training (" in s]
    assert starts[0].endswith("pooled ridge: training (1/2)")
    assert "training (2/2, about " in starts[1] and starts[1].endswith(" left)")
