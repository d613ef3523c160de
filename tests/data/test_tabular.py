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
    ("size", 2, "three", r"'size' must be numeric but row 3 \(line 4 of the file\) holds "
                         r"'three'"),
    ("score", 0, "n/a!", "column 'score' must be numeric"),
])
def test_bad_cell_names_the_column(tmp_path, column, row, value, message):
    df = _frame().astype({column: object})
    df.loc[row, column] = value
    df.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(NetscopeError, match=message):
        load_table(tmp_path / "m.csv", task="group", target="score", missing="error")


def test_missing_cells_are_kept_for_imputation(tmp_path):
    """By default a gap is taken: NaN in a numeric column, its own level in a text column
    (said in the notes); rows without a target are dropped and counted."""
    df = _frame().astype({"colour": object, "score": float})
    df.loc[3, "size"] = np.nan
    df.loc[1, "colour"] = np.nan
    df.loc[4, "score"] = np.nan
    df.to_csv(tmp_path / "m.csv", index=False)
    d = load_table(tmp_path / "m.csv", task="group", target="score")
    assert d.X.shape[0] == len(df) - 1 and np.isnan(d.X[3, d.feature_names.index("size")])
    assert "colour=(missing)" in d.feature_names
    notes = " ".join(d.notes.values())
    assert "1 row(s) without a target value dropped" in notes and "colour" in notes


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


def test_messages_cut_user_values_and_count_rows_one_way(tmp_path):
    """A 1,000,000-character cell is quoted in 60 characters with its length; every row in
    a message counts from 1 (the header not counted) and a file's row names its line."""
    pd.DataFrame({"group": ["a", "b", "b"], "size": [1, 2, 3],
                  "score": ["z" * 1_000_000, "2", "3"]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(NetscopeError) as err:
        load_table(tmp_path / "m.csv", task="group", target="score")
    text = str(err.value)
    assert len(text) < 300 and "(1,000,000 characters)" in text
    assert "row 1 (line 2 of the file)" in text
    from netscope.data.tasks import TaskData

    with pytest.raises(NetscopeError, match=r"first at row 2 \(counting from 1\)"):
        TaskData(np.array([[1.0], [np.inf], [2.0], [3.0]]), np.arange(4.0),
                 np.array([0, 0, 1, 1]), ["a", "b"], ["x"])


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_other_delimiters_are_read(tmp_path, sep):
    _frame().to_csv(tmp_path / "m.csv", index=False, sep=sep)
    d = load_table(tmp_path / "m.csv", task="group", target="score")
    assert d.X.shape[0] == len(_frame()) and "size" in d.feature_names


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "utf-32"])
def test_unicode_files_with_a_byte_order_mark_are_read(tmp_path, encoding):
    frame = _frame().assign(group=lambda f: f["group"] + "é")
    frame.to_csv(tmp_path / "m.csv", index=False, encoding=encoding)
    d = load_table(tmp_path / "m.csv", task="group", target="score")
    assert d.task_names[0].endswith("é")


def test_other_encodings_are_named(tmp_path):
    text = _frame().to_csv(index=False)
    (tmp_path / "bom-less.csv").write_bytes(text.encode("utf-16-le"))
    with pytest.raises(NetscopeError, match="looks like UTF-16 text without a byte-order mark"):
        load_table(tmp_path / "bom-less.csv", task="group", target="score")
    (tmp_path / "latin.csv").write_bytes(text.replace("red", "rouge é").encode("latin-1"))
    with pytest.raises(NetscopeError, match=r"not UTF-8 text \(byte 0xe9 .*Latin-1"):
        load_table(tmp_path / "latin.csv", task="group", target="score")


def test_nested_parquet_columns_are_named(tmp_path):
    """Parquet list and struct columns gave misleading errors later ("no feature varies",
    "deviance is not finite"); they are named at reading."""
    pytest.importorskip("pyarrow")
    from netscope.data.tabular import read_rows

    df = pd.DataFrame({"task": ["a", "b"] * 5, "y": np.arange(10.0), "x": np.arange(10.0),
                       "tags": [[1, 2]] * 10, "meta": [{"k": 1}] * 10})
    df.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(NetscopeError, match=r"column\(s\) 'tags', 'meta' hold nested values"):
        read_rows(tmp_path / "t.parquet")
    df.drop(columns=["tags", "meta"]).to_parquet(tmp_path / "flat.parquet")
    assert list(read_rows(tmp_path / "flat.parquet").columns) == ["task", "y", "x"]


@pytest.mark.parametrize("name, said", [
    ("evil\u202eabc", r"'evil\\u202eabc' at row 2 .*U\+202E"),
    ("two\nlines", r"'two\\nlines' at row 2 .*U\+000A"),
    ("   ", r"blank name '   ' at row 2"),
])
def test_task_names_that_would_break_the_report_are_refused(tmp_path, name, said):
    df = pd.DataFrame({"task": ["a", name, "a", "b"], "y": [1.0, 2, 3, 4],
                       "x": [0.0, 1, 2, 3]})
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(NetscopeError, match=said):
        load_table(tmp_path / "t.csv", "task", "y")


def test_the_tours_example_files_load_as_their_kinds(tmp_path, capsys):
    """`netscope data examples` writes every file the README's tour names; each table loads
    with the target kind the tour says, and the photos are images."""
    from PIL import Image

    from netscope.cli import main

    assert main(["data", "examples", "--out", str(tmp_path)]) == 0
    kinds = {"shops.csv": ("shop", "sales", "regression"),
             "visits.csv": ("clinic", "returned", "binary"),
             "claims.csv": ("region", "claims", "count"),
             "trips.csv": ("city", "mode", "multiclass")}
    for name, (task, target, kind) in kinds.items():
        data = load_table(tmp_path / name, task, target,
                          target_kind="count" if kind == "count" else "auto")
        assert data.kind == kind, name
        assert data.n_tasks >= 20
    fresh = pd.read_csv(tmp_path / "new_trips.csv")
    assert "mode" not in fresh and "city20" in set(fresh.city)  # a city never seen
    for photo in ("photos/chelsea.jpg", "photos/rocket.jpg", "my.jpg"):
        assert Image.open(tmp_path / photo).mode == "RGB"
    assert "--task-column shop --target-column sales" in capsys.readouterr().out
