import numpy as np
import pandas as pd
import pytest

from netscope.data import load_table
from netscope.errors import NetscopeError


def _frame():
    return pd.DataFrame({
        "group": ["a", "a", "b", "b", "b", "c", "c"],
        "size": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        "colour": ["red", "blue", "red", "red", "green", "blue", "red"],
        "score": [10, 11, 12, 13, 14, 15, 16],
    })


def test_csv_round_trip(tmp_path):
    path = tmp_path / "mine.csv"
    _frame().to_csv(path, index=False)
    d = load_table(path, task="group", target="score")
    assert d.task_names == ["a", "b", "c"]
    assert d.feature_names == ["size", "colour=blue", "colour=green", "colour=red"]
    assert np.array_equal(d.X[:, 0], _frame()["size"].to_numpy())
    assert np.array_equal(d.X[4, 1:], [0, 1, 0])  # green one-hot
    assert np.array_equal(d.y, _frame()["score"].to_numpy())
    assert np.array_equal(d.task, [0, 0, 1, 1, 1, 2, 2])


def test_chosen_features(tmp_path):
    path = tmp_path / "mine.csv"
    _frame().to_csv(path, index=False)
    d = load_table(path, task="group", target="score", features=["size"])
    assert d.feature_names == ["size"]


@pytest.mark.parametrize("column, row, value, message", [
    ("size", 3, np.nan, "column 'size' has a missing value at row 4"),
    ("size", 2, "three", "'size' must be numeric but row 3 holds 'three'"),
    ("score", 0, "n/a!", "column 'score' must be numeric"),
])
def test_bad_cell_names_the_column(tmp_path, column, row, value, message):
    df = _frame().astype({column: object})
    df.loc[row, column] = value
    df.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(NetscopeError, match=message):
        load_table(tmp_path / "m.csv", task="group", target="score")


def test_single_row_task(tmp_path):
    df = pd.concat([_frame(), pd.DataFrame({"group": ["lonely"], "size": [1.0],
                                            "colour": ["red"], "score": [3]})])
    df.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(NetscopeError, match="task 'lonely' has 1 row"):
        load_table(tmp_path / "m.csv", task="group", target="score")


def test_empty_csv(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(NetscopeError, match="the file is empty"):
        load_table(tmp_path / "e.csv", task="group", target="score")


def test_header_only_csv(tmp_path):
    (tmp_path / "h.csv").write_text("group,size,score\n")
    with pytest.raises(NetscopeError, match="header but no rows"):
        load_table(tmp_path / "h.csv", task="group", target="score")


def test_missing_column(tmp_path):
    _frame().to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(NetscopeError, match="no column 'school'; the columns are group, size"):
        load_table(tmp_path / "m.csv", task="school", target="score")


def test_missing_file(tmp_path):
    with pytest.raises(NetscopeError, match="file not found"):
        load_table(tmp_path / "nope.csv", task="g", target="s")


def test_parquet_round_trip_when_pyarrow_present(tmp_path):
    pytest.importorskip("pyarrow")
    _frame().to_parquet(tmp_path / "m.parquet")
    d = load_table(tmp_path / "m.parquet", task="group", target="score")
    assert d.X.shape == (7, 4)
