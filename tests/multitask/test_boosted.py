"""Boosted trees: the exported forest predicts as scikit-learn does; the search and the
task encoding use training rows only."""

import numpy as np
import pytest

from netscope.errors import NetscopeError
from netscope.multitask.trees.boosted import BoostedTrees
from netscope.multitask.trees.forest import Forest


def task_offsets(T=12, n=30, seed=0):
    """y = task offset + a threshold effect of feature 0."""
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(T), n)
    X = rng.normal(size=(T * n, 3))
    offsets = rng.normal(scale=3.0, size=T)
    y = offsets[t] + 2.0 * (X[:, 0] > 0.3) + 0.1 * rng.normal(size=T * n)
    return X, y, t, offsets


def test_exported_forest_equals_sklearn():
    from sklearn.ensemble import HistGradientBoostingRegressor

    X, y, t, _ = task_offsets()
    Z = np.column_stack([t, X]).astype(float)
    model = HistGradientBoostingRegressor(max_iter=40, max_leaf_nodes=7,
                                          categorical_features=[0]).fit(Z, y)
    forest = Forest.from_sklearn(model)
    assert forest.is_categorical.any()  # the task column is split on as a category
    np.testing.assert_allclose(forest.predict(Z), model.predict(Z), rtol=0, atol=1e-12)


def test_learns_task_offsets_and_threshold():
    X, y, t, offsets = task_offsets()
    m = BoostedTrees(leaves=(7,), l2=(0.0,)).fit(X, y, t)
    probe = np.zeros((12, 3))
    probe[:, 0] = -1.0  # below the threshold
    np.testing.assert_allclose(m.predict(probe, np.arange(12)), offsets, atol=0.35)
    assert m.trees_ >= 1 and m.leaves_ == 7
    assert min(r["loss"] for r in m.search_) == pytest.approx(
        next(r["loss"] for r in m.search_ if (r["leaves"], r["l2"]) == (m.leaves_, m.l2_)))


def test_many_tasks_are_encoded_by_their_random_effects():
    X, y, t, offsets = task_offsets(T=300, n=6)
    m = BoostedTrees(leaves=(7,), l2=(0.0,)).fit(X, y, t)
    assert m.encoder_ is not None and m.task_encoding_ is None
    intercepts = m.encoder_.coef_[:, -1]  # each task's intercept (fixed + random)
    assert np.corrcoef(intercepts, offsets)[0, 1] > 0.9
    assert np.mean((m.predict(X, t) - y) ** 2) < 0.5 * np.var(y)


def test_unseen_task_is_a_clear_error_when_asked():
    X, y, t, _ = task_offsets()
    m = BoostedTrees(leaves=(7,), l2=(0.0,)).fit(X, y, t)
    with pytest.raises(NetscopeError, match="task 99 was not seen in fit"):
        m.predict(X[:1], [99], unseen="error")
    assert np.isfinite(m.predict(X[:3], [99, 99, 0])).all()  # population by default


def test_missing_values_follow_the_trees():
    """NaN features are taken as they are and predicted as scikit-learn predicts them."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    X, y, t, _ = task_offsets()
    X = X.copy()
    X[::7, 0] = np.nan
    m = BoostedTrees(leaves=(7,), l2=(0.0,), trees=30).fit(X, y, t)
    ref = HistGradientBoostingRegressor(
        learning_rate=0.05, max_iter=30, max_leaf_nodes=7, min_samples_leaf=m.min_leaf_,
        l2_regularization=0.0, categorical_features=[0], max_features=0.3,
        early_stopping=False, random_state=0).fit(np.hstack([t[:, None], X]), y)
    np.testing.assert_allclose(m.predict(X, t), ref.predict(np.hstack([t[:, None], X])),
                               atol=1e-10)


def test_bad_parameters():
    X, y, t, _ = task_offsets(T=3, n=5)
    with pytest.raises(NetscopeError, match="validation must be a share"):
        BoostedTrees(validation=1.5).fit(X, y, t)
    with pytest.raises(NetscopeError, match="leaves must be numbers >= 2"):
        BoostedTrees(leaves=(1,)).fit(X, y, t)
    with pytest.raises(NetscopeError, match="max_features must be a share"):
        BoostedTrees(max_features=0.0).fit(X, y, t)
    with pytest.raises(NetscopeError, match="min_leaf must be a whole number"):
        BoostedTrees(min_leaf=0).fit(X, y, t)


def test_small_data_still_gets_splits():
    """50 rows per leaf would allow one split on 60 rows: the cap (a tenth of the rows) lets
    the trees find the threshold."""
    X, y, t, _ = task_offsets(T=3, n=20)
    m = BoostedTrees(leaves=(3,), l2=(0.0,)).fit(X, y, t)
    assert m.min_leaf_ == 6
    probe = np.zeros((2, 3))
    probe[:, 0] = [-1.0, 1.0]
    lo, hi = m.predict(probe, [0, 0])
    assert hi - lo > 1.0  # the 2.0 step of feature 0 is found


def test_a_known_setting_skips_the_search():
    """trees=N with one leaves and one l2: no validation share, no search; the same forest
    as scikit-learn's on all rows with that setting (what the ensemble's inner copy uses)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    X, y, t, _ = task_offsets()
    fixed = BoostedTrees(leaves=(7,), l2=(10.0,), trees=30).fit(X, y, t)
    assert fixed.search_ == [] and (fixed.leaves_, fixed.l2_, fixed.trees_) == (7, 10.0, 30)
    assert fixed.min_leaf_ == 36  # 50 capped at a tenth of the 360 rows
    Z = np.column_stack([t, X]).astype(float)
    ref = HistGradientBoostingRegressor(learning_rate=0.05, max_iter=30, max_leaf_nodes=7,
                                        min_samples_leaf=36, l2_regularization=10.0,
                                        max_features=0.3, categorical_features=[0],
                                        early_stopping=False, random_state=0).fit(Z, y)
    np.testing.assert_allclose(fixed.predict(X, t), ref.predict(Z), atol=1e-12)
    with pytest.raises(NetscopeError, match="fixed number of trees needs one leaves"):
        BoostedTrees(trees=30).fit(X, y, t)


@pytest.mark.parametrize("loss", ["log_loss", "poisson"])
def test_yes_no_and_count_trees_equal_scikit_learn(loss):
    """The exported forest predicts what scikit-learn's classifier (probabilities) and
    Poisson regressor (means) predict."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    X, y, t, _ = task_offsets()
    rng = np.random.default_rng(1)
    y = (y > np.median(y)).astype(float) if loss == "log_loss" else \
        rng.poisson(np.exp(0.3 * (y - y.mean()))).astype(float)
    m = BoostedTrees(leaves=(7,), l2=(0.0,), trees=25, loss=loss).fit(X, y, t)
    common = dict(learning_rate=0.05, max_iter=25, max_leaf_nodes=7, min_samples_leaf=m.min_leaf_,
                  l2_regularization=0.0, categorical_features=[0], max_features=0.3,
                  early_stopping=False, random_state=0)
    Z = np.hstack([t[:, None], X])
    if loss == "log_loss":
        ref = HistGradientBoostingClassifier(**common).fit(Z, y).predict_proba(Z)[:, 1]
    else:
        ref = HistGradientBoostingRegressor(loss="poisson", **common).fit(Z, y).predict(Z)
    np.testing.assert_allclose(m.predict(X, t), ref, rtol=1e-9, atol=1e-12)
    searched = BoostedTrees(leaves=(3, 7), l2=(0.0,), loss=loss).fit(X, y, t)
    assert searched.trees_ >= 1 and np.isfinite(searched.predict(X, t)).all()


def test_past_255_tasks_the_task_is_a_cross_fitted_mixed_model_encoding(tmp_path):
    """300 tasks with random intercepts and slopes: the encoding carries both, so the trees
    stay far ahead of trees without the task; a new task gets the fixed effects' encoding;
    the encoder saves and loads with the forest."""
    from netscope.multitask.base import load_model

    rng = np.random.default_rng(0)
    T, n = 300, 12
    X = rng.normal(size=(T * n, 2))
    t = np.repeat(np.arange(T), n)
    y = np.sin(X[:, 0]) + rng.normal(0, 1, T)[t] + rng.normal(0, 0.7, T)[t] * X[:, 1] + \
        rng.normal(0, 0.2, T * n)
    test = np.arange(T * n) % 4 == 0
    m = BoostedTrees(leaves=(7,), l2=(0.0,)).fit(X[~test], y[~test], t[~test])
    assert m.encoder_ is not None
    blind = BoostedTrees(leaves=(7,), l2=(0.0,)).fit(X[~test], y[~test], np.zeros((~test).sum()))
    err = np.mean((m.predict(X[test], t[test]) - y[test]) ** 2)
    assert err < 0.5 * np.mean((blind.predict(X[test], np.zeros(test.sum())) - y[test]) ** 2)
    fe = m.encoder_.fixed_effects_
    col = X[test][:5] @ fe[:-1] + fe[-1]
    np.testing.assert_allclose(m.predict(X[test][:5], [10_000] * 5),
                               m.forest_.predict(np.hstack([col[:, None], X[test][:5]])))
    again = load_model(m.save(tmp_path / "trees"))
    np.testing.assert_allclose(again.predict(X[test], t[test]), m.predict(X[test], t[test]))
