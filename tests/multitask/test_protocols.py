import numpy as np
import pytest

from netscope.data import load_school, load_survey
from netscope.data.tasks import Split, TaskData
from netscope.errors import NetscopeError
from netscope.multitask import protocols


def test_lecture_school_split_and_scaling(data_root):
    d = load_school(data_root)
    p = protocols.lecture(d, seed=3)
    split = p.splits[0]
    sizes_test = np.bincount(d.task[split.test], minlength=139)
    assert np.all(np.abs(sizes_test - 0.4 * d.task_sizes()) <= 1)
    prep = protocols.prepare(d, split, p.scale_from)
    assert prep.X_train.shape[1] == 27  # the constant bias column is dropped
    all_y = (d.y - d.y.mean()) / d.y.std()
    np.testing.assert_allclose(prep.y_test, all_y[split.test])  # scaled over ALL rows
    assert "ALL rows" in p.definition
    again = protocols.lecture(d, seed=3).splits[0]
    assert np.array_equal(again.test, split.test)  # seeded


def test_standard_survey_is_16_and_4(data_root):
    d = load_survey(data_root)
    p = protocols.standard(d)
    split = p.splits[0]
    assert split.train.size == 190 * 16 and split.test.size == 190 * 4
    assert np.all(split.test % 20 >= 16)
    prep = protocols.prepare(d, split, p.scale_from)
    np.testing.assert_allclose(prep.y_train.mean(), 0, atol=1e-12)  # training rows only
    assert prep.reference_scale == pytest.approx(d.y[split.train].std())


def test_lecture_survey_raw_scale(data_root):
    d = load_survey(data_root)
    p = protocols.lecture(d)
    split = p.splits[0]
    prep = protocols.prepare(d, split, p.scale_from)
    centre = d.y[split.train].mean()  # raw units, centred on the training mean only
    np.testing.assert_allclose(prep.y_test, d.y[split.test] - centre)
    np.testing.assert_allclose(prep.target.inverse_target(prep.y_test), d.y[split.test])
    assert prep.reference_scale == pytest.approx(d.y[split.train].std())
    assert prep.X_train.shape[1] == 13  # constant dropped, +/-1 kept


def test_split_must_leave_rows_on_both_sides():
    d = TaskData(X=np.arange(8.0)[:, None], y=np.arange(8.0), task=[0, 0, 0, 0, 1, 1, 1, 1],
                 task_names=["a", "b"], feature_names=["x"])
    with pytest.raises(NetscopeError, match="task 'b' has no test rows"):
        Split(train=np.array([0, 1, 4, 5, 6, 7]), test=np.array([2, 3])).check(d)
    with pytest.raises(NetscopeError, match="test fraction"):
        protocols.random_split(d, 1.5, 0, "x")


def test_taskdata_names_bad_feature_column():
    with pytest.raises(NetscopeError, match="feature column 'b' has an infinite value"):
        TaskData(X=[[1.0, np.inf], [2.0, 3.0]], y=[1, 2], task=[0, 0], task_names=["t"],
                 feature_names=["a", "b"])
    with pytest.raises(NetscopeError, match="feature column 'b' is missing on every row"):
        TaskData(X=[[1.0, np.nan], [2.0, np.nan]], y=[1, 2], task=[0, 0], task_names=["t"],
                 feature_names=["a", "b"])


def test_missing_values_are_imputed_from_training_rows_only():
    """Medians and indicators come from training rows: a value only the test rows hold
    never reaches the fill; trees get the gaps as NaN."""
    X = np.array([[1.0, 0], [np.nan, 1], [3.0, 2], [5.0, 3], [1000.0, 4], [np.nan, 5]])
    d = TaskData(X=X, y=np.arange(6.0), task=[0, 0, 1, 1, 0, 1], task_names=["a", "b"],
                 feature_names=["u", "v"])
    split = Split(train=np.array([0, 1, 2, 3]), test=np.array([4, 5]))
    prep = protocols.prepare(d, split, "none")
    assert prep.X_train.shape[1] == 3  # u, v, "u is missing"
    filled = prep.X_test[:, 0]
    assert filled[1] == 3.0  # the training median of 1, 3, 5 (1000 is a test value)
    assert prep.X_test[1, 2] == 1.0 and prep.X_test[0, 2] == 0.0
    assert np.isnan(prep.X_test_gaps[1, 0]) and prep.X_test_gaps[0, 0] == 1000.0
    assert any("u: 2 missing cell(s) filled with the training median 3" in n
               for n in prep.notes)


def test_users_own_data_is_scaled_on_training_rows_only():
    """Only the course's school reproduction may standardize over all rows; a user's data
    (even a file that happens to be called school.csv) never sees its test rows."""
    rng = np.random.default_rng(0)
    task = np.repeat([0, 1, 2], 20)
    X = rng.normal(size=(60, 2))
    y = 100 + 10 * rng.normal(size=60)
    for name in ("shops", "school"):
        d = TaskData(X=X, y=y, task=task, task_names=list("abc"), feature_names=["u", "v"],
                     name=name)
        p = protocols.lecture(d, seed=1)
        assert p.scale_from == "train" and "ALL rows" not in p.definition
        split = p.splits[0]
        prep = protocols.prepare(d, split, p.scale_from)
        np.testing.assert_allclose(prep.target.mean, [y[split.train].mean()])
        np.testing.assert_allclose(prep.features.mean, X[split.train].mean(0))
        changed = y.copy()
        changed[split.test] += 1e6  # test targets can't move any fitted statistic
        d2 = TaskData(X=X, y=changed, task=task, task_names=list("abc"),
                      feature_names=["u", "v"], name=name)
        prep2 = protocols.prepare(d2, split, p.scale_from)
        np.testing.assert_allclose(prep2.y_train, prep.y_train)
        np.testing.assert_allclose(prep2.target.scale, prep.target.scale)


def test_overflowing_values_are_refused():
    d = TaskData(X=[[1e300], [-1e300], [3e300], [2.0]], y=[1, 2, 3, 4], task=[0, 0, 1, 1],
                 task_names=["a", "b"], feature_names=["huge"])
    split = Split(train=np.array([0, 2]), test=np.array([1, 3]))
    with pytest.raises(NetscopeError, match="feature 'huge' cannot be scaled into float32"):
        protocols.prepare(d, split, "train")
    with pytest.raises(NetscopeError, match="cannot be scaled into float32"):
        protocols.prepare(d, split, "none")


def test_new_tasks_protocol_holds_whole_tasks_out():
    rng = np.random.default_rng(0)
    task = np.repeat(np.arange(10), 8)
    d = TaskData(X=rng.normal(size=(80, 2)), y=rng.normal(size=80), task=task,
                 task_names=[f"t{k}" for k in range(10)], feature_names=["u", "v"])
    p = protocols.new_tasks(d, folds=5, seed=3)
    assert p.name == "new-tasks" and "grouped 5-fold" in p.definition and len(p.splits) == 5
    held = []
    for split in p.splits:
        split.check(d)
        trained = set(task[split.train])
        new = set(task[split.test]) - trained
        assert len(new) == 2 and all((task == k).sum() == np.isin(split.test,
                                     np.flatnonzero(task == k)).sum() for k in new)
        assert len(trained) == 8 and set(task[split.test]) >= trained  # seen tasks test too
        held += sorted(new)
    assert sorted(held) == list(range(10))  # every task is new exactly once
    with pytest.raises(NetscopeError, match="has 10 task"):
        protocols.new_tasks(d, folds=11)
    std = protocols.hold_out_tasks(d, protocols.standard(d, n_splits=2), 0.3, seed=1)
    for split in std.splits:
        assert len(set(task[split.test]) - set(task[split.train])) == 3
    with pytest.raises(NetscopeError, match="holds out 0 of 10"):
        protocols.hold_out_tasks(d, protocols.standard(d, n_splits=1), 0.01)


def test_new_task_scores_are_apart_and_equal_the_population_prediction():
    """Rows of held-out tasks are scored on their own; the mixed model predicts them with
    its fixed effects."""
    from netscope.multitask.comparison import compare

    rng = np.random.default_rng(1)
    task = np.repeat(np.arange(12), 30)
    X = rng.normal(size=(360, 2))
    y = X[:, 0] + rng.normal(0, 1, 12)[task] + rng.normal(0, 0.3, 360)
    d = TaskData(X=X, y=y, task=task, task_names=[f"t{k}" for k in range(12)],
                 feature_names=["u", "v"])
    comp = compare(d, protocols.new_tasks(d, folds=3), families=["mixed-effects", "pooled-ridge"])
    mixed, pooled = comp.summary()
    assert {"new_mse", "seen_mse"} <= set(mixed)
    assert mixed["seen_mse"] < 0.5 * mixed["new_mse"]  # knowing the task helps a lot
    res = comp.results[0]
    new = res.new_task
    fe = res.model.fixed_effects_
    split = comp.protocol.splits[0]
    prep = protocols.prepare(d, split, "train")
    expected = prep.target.inverse_target(prep.X_test[new] @ fe[:-1] + fe[-1])
    np.testing.assert_allclose(res.y_pred[new], expected, atol=1e-9)
