import numpy as np
import scipy.io

from netscope.data import load_survey


def test_survey_shape(data_root):
    d = load_survey(data_root)
    assert d.X.shape == (3800, 14)
    assert d.n_tasks == 190
    assert np.all(d.task_sizes() == 20)
    assert set(np.unique(d.X[:, 1:])) == {-1.0, 1.0}
    assert d.y.min() >= 0 and d.y.max() <= 10


def test_survey_rows_are_subject_major(data_root):
    d = load_survey(data_root)
    raw = scipy.io.loadmat(data_root / "computer_survey" / "conjointAnalysisComputerBuyers.mat")
    assert np.array_equal(d.y[20:40], raw["likeBuy"][1])
    assert np.array_equal(d.X[25], raw["designMarix"][5])
