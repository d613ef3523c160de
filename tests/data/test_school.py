import numpy as np
import pytest
import scipy.io

from netscope.data import load_school, load_school_split
from netscope.errors import NetscopeError


def test_school_rows_tasks_and_boundaries(data_root):
    d = load_school(data_root)
    assert d.X.shape == (15362, 28)
    assert d.n_tasks == 139
    sizes = d.task_sizes()
    assert sizes[0] == 200 and sizes[1] == 91
    assert sizes[-1] == 23  # the last school runs to the final row
    assert sizes.sum() == 15362
    assert d.feature_names[-1] == "bias" and np.all(d.X[:, -1] == 1)
    assert d.y.min() >= 1 and d.y.max() <= 70


@pytest.mark.parametrize("i", range(1, 11))
def test_school_splits(data_root, i):
    d = load_school(data_root)
    s = load_school_split(i, d, data_root)
    assert s.train.size == 11472 and s.test.size == 3890
    assert np.intersect1d(s.train, s.test).size == 0
    assert s.train.min() >= 0 and s.test.max() < 15362


def test_split_one_first_rows(data_root):
    d = load_school(data_root)
    s = load_school_split(1, d, data_root)
    raw = scipy.io.loadmat(data_root / "school" / "school_1_indexes.mat")
    assert np.array_equal(s.train, raw["tr"].ravel() - 1)  # 1-based in the file


def test_split_number_out_of_range(data_root):
    d = load_school(data_root)
    with pytest.raises(NetscopeError, match="school split must be 1..10"):
        load_school_split(11, d, data_root)


def test_missing_file_names_the_fix(tmp_path):
    (tmp_path / "school").mkdir()
    with pytest.raises(NetscopeError, match="file not found.*--data-dir"):
        load_school(tmp_path)


def test_corrupt_file(tmp_path):
    (tmp_path / "school").mkdir()
    (tmp_path / "school" / "school_b.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(NetscopeError, match="not a readable MATLAB file"):
        load_school(tmp_path)


def test_wrong_keys(tmp_path):
    (tmp_path / "school").mkdir()
    scipy.io.savemat(tmp_path / "school" / "school_b.mat", {"X": np.ones((2, 2))})
    with pytest.raises(NetscopeError, match=r"expected variable\(s\) x, y, task_indexes.*holds X"):
        load_school(tmp_path)


def test_bad_task_indexes(tmp_path):
    (tmp_path / "school").mkdir()
    scipy.io.savemat(tmp_path / "school" / "school_b.mat",
                     {"x": np.ones((3, 6)), "y": np.ones((6, 1)),
                      "task_indexes": np.array([[2], [4]])})
    with pytest.raises(NetscopeError, match="must begin at 1"):
        load_school(tmp_path)


def test_split_from_another_data_set(tmp_path, data_root):
    d = load_school(data_root)
    (tmp_path / "school").mkdir()
    raw = scipy.io.loadmat(data_root / "school" / "school_1_indexes.mat")
    raw["tr_indexes"] = raw["tr_indexes"].copy()
    raw["tr_indexes"][1] += 3  # shift a task boundary
    scipy.io.savemat(tmp_path / "school" / "school_1_indexes.mat",
                     {k: v for k, v in raw.items() if not k.startswith("__")})
    with pytest.raises(NetscopeError, match="disagrees with the schools"):
        load_school_split(1, d, tmp_path)


def test_feature_names_match_the_data(data_root):
    """The names follow the source's codes (VR1=2, VR2=3, VR3=1) and the data's own
    evidence: single-sex schools, band means, and the school's VR1 share."""
    d = load_school(data_root)
    col = {n: d.X[:, i] for i, n in enumerate(d.feature_names)}
    girls, boys = col["school_girls"] == 1, col["school_boys"] == 1
    assert (col["gender_female"][girls] == 1).all()  # 4,404 of 4,404
    assert col["gender_male"][boys].mean() > 0.999  # 3,653 of 3,654 (one in the data is not)
    assert (col["gender_female"] + col["gender_male"] == 1).all()
    means = {b: d.y[col[f"vr_band_{b}"] == 1].mean() for b in (1, 2, 3)}
    assert means[1] > means[2] > means[3]  # band 1 is the most able
    share = np.array([col["vr_band_1"][d.task == t].mean() for t in range(d.n_tasks)])
    pct = np.array([col["pct_vr1_band"][d.task == t].mean() for t in range(d.n_tasks)])
    assert np.corrcoef(share, pct)[0, 1] > 0.7
    assert d.y[col["gender_female"] == 1].mean() > d.y[col["gender_male"] == 1].mean()
