"""Logistic and Poisson forms of the linear families: equal to scikit-learn at the same
penalty, one-class tasks get the constant model, sharing helps on grouped data."""

import numpy as np
import pytest

from netscope.multitask.linear.ridge import MeanRegularizedRidge, PooledRidge, RidgePerTask


def grouped(T=6, n=80, seed=0, kind="binary"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(T * n, 3))
    t = np.repeat(np.arange(T), n)
    eta = X @ np.array([1.0, -0.5, 0.3]) + rng.normal(0, 1, T)[t]
    if kind == "binary":
        return X, (rng.uniform(size=T * n) < 1 / (1 + np.exp(-eta))).astype(float), t
    return X, rng.poisson(np.exp(0.3 * eta)).astype(float), t


def test_logistic_per_task_equals_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    X, y, t = grouped()
    m = RidgePerTask(loss="log_loss", penalties=(2.0,)).fit(X, y, t)
    for k in range(6):
        ref = LogisticRegression(C=1 / 2.0, tol=1e-12, max_iter=10_000).fit(X[t == k], y[t == k])
        np.testing.assert_allclose(m.coef_[k, :-1], ref.coef_[0], atol=1e-6)
        np.testing.assert_allclose(m.coef_[k, -1], ref.intercept_[0], atol=1e-6)
        np.testing.assert_allclose(m.predict(X[t == k], t[t == k]),
                                   ref.predict_proba(X[t == k])[:, 1], atol=1e-6)


def test_pooled_logistic_and_poisson_equal_scikit_learn():
    from sklearn.linear_model import LogisticRegression, PoissonRegressor

    X, y, t = grouped()
    m = PooledRidge(loss="log_loss", penalties=(0.5,)).fit(X, y, t)
    ref = LogisticRegression(C=2.0, tol=1e-12, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(m.coef_[0, :-1], ref.coef_[0], atol=1e-6)
    X, c, t = grouped(kind="count")
    m = PooledRidge(loss="poisson", penalties=(3.0,)).fit(X, c, t)
    ref = PoissonRegressor(alpha=3.0 / len(c), tol=1e-12, max_iter=10_000).fit(X, c)
    np.testing.assert_allclose(m.coef_[0, :-1], ref.coef_, atol=1e-6)
    np.testing.assert_allclose(m.coef_[0, -1], ref.intercept_, atol=1e-6)


@pytest.mark.parametrize("loss, fill", [("log_loss", 1.0), ("log_loss", 0.0), ("poisson", 0.0)])
def test_a_one_class_task_gets_the_constant_model(loss, fill):
    X, y, t = grouped(kind="binary" if loss == "log_loss" else "count")
    y = y.copy()
    y[t == 2] = fill
    said = []
    m = RidgePerTask(loss=loss, progress=said.append).fit(X, y, t)
    n = (t == 2).sum()
    rate = (fill * n + 0.5) / (n + 1)
    np.testing.assert_allclose(m.predict(X[:5], [2] * 5), rate, rtol=1e-12)
    assert np.isfinite(m.predict(X, t)).all()
    assert any("1 task(s) have only" in line for line in said)
    shared = MeanRegularizedRidge(loss=loss).fit(X, y, t)  # sharing needs no special case
    assert np.isfinite(shared.predict(X, t)).all()


def test_sharing_beats_per_task_and_pooled_on_grouped_yes_no():
    from netscope.multitask.comparison.metrics import score
    from netscope.multitask.targets import KINDS

    rng = np.random.default_rng(3)
    T, n = 40, 30
    X = rng.normal(size=(T * n, 3))
    t = np.repeat(np.arange(T), n)
    eta = X @ np.array([1.0, -1.0, 0.5]) + rng.normal(0, 1.2, T)[t]
    y = (rng.uniform(size=T * n) < 1 / (1 + np.exp(-eta))).astype(float)
    test = np.arange(T * n) % 3 == 0
    losses = {}
    for cls in (RidgePerTask, PooledRidge, MeanRegularizedRidge):
        m = cls(loss="log_loss").fit(X[~test], y[~test], t[~test])
        losses[cls.__name__] = score(KINDS["binary"], y[test], m.predict(X[test], t[test]),
                                     t[test], T).values["log_loss"]
    assert losses["MeanRegularizedRidge"] < min(losses["RidgePerTask"], losses["PooledRidge"])


def test_a_class_only_in_the_test_share_is_refused():
    from netscope.data.tasks import Split, TaskData
    from netscope.errors import NetscopeError
    from netscope.multitask import protocols

    X, y, t = grouped(T=2, n=10)
    y = np.zeros(20)
    y[[3, 15]] = 1.0
    d = TaskData(X=X, y=y, task=t, task_names=["a", "b"], feature_names=["u", "v", "w"],
                 kind="binary", classes=("no", "yes"))
    split = Split(train=np.setdiff1d(np.arange(20), [3, 15]), test=np.array([3, 15]),
                  name="split 1")
    with pytest.raises(NetscopeError, match="class 'yes' of target 'y' has no training rows"):
        protocols.prepare(d, split, "train")


def test_poisson_sharing_beats_per_task_and_pooled():
    from netscope.multitask.comparison.metrics import score
    from netscope.multitask.linear.mixed import MixedEffects
    from netscope.multitask.targets import KINDS

    rng = np.random.default_rng(7)
    T, n = 60, 25
    X = rng.normal(size=(T * n, 2))
    t = np.repeat(np.arange(T), n)
    c = rng.poisson(np.exp(0.3 + X @ np.array([0.5, -0.3]) + rng.normal(0, 0.6, T)[t]))
    test = np.arange(T * n) % 3 == 0
    dev = {}
    for est in (MixedEffects(loss="poisson", random="intercept"), MeanRegularizedRidge(
            loss="poisson"), RidgePerTask(loss="poisson"), PooledRidge(loss="poisson")):
        est.fit(X[~test], c[~test], t[~test])
        dev[type(est).__name__] = score(KINDS["count"], c[test], est.predict(X[test], t[test]),
                                        t[test], T).values["poisson_deviance"]
    for shared in ("MixedEffects", "MeanRegularizedRidge"):
        assert dev[shared] < min(dev["RidgePerTask"], dev["PooledRidge"])


def test_saved_yes_no_models_predict_labels_and_probabilities(tmp_path):
    """Through the comparison a model learns the class names; saved and loaded, it gives
    probabilities of both classes and each row's label."""
    import pandas as pd

    from netscope.data import load_table
    from netscope.multitask import compare, load_model, protocols

    X, y, t = grouped(T=4, n=40)
    pd.DataFrame({"u": X[:, 0], "v": X[:, 1], "w": X[:, 2], "shop": t,
                  "bought": np.where(y == 1, "yes", "no")}).to_csv(tmp_path / "b.csv",
                                                                   index=False)
    data = load_table(tmp_path / "b.csv", "shop", "bought")
    assert data.kind == "binary" and data.classes == ("no", "yes")
    comp = compare(data, protocols.lecture(data), families=["pooled-ridge", "boosted-trees"])
    for res in comp.results:
        model = load_model(res.model.save(tmp_path / res.family.key))
        proba = model.predict_proba(X[:6], t[:6])
        np.testing.assert_allclose(proba.sum(1), 1.0)
        labels = model.predict_labels(X[:6], t[:6])
        np.testing.assert_array_equal(labels, np.where(proba[:, 1] > 0.5, "yes", "no"))
    with pytest.raises(Exception, match="predicts numbers, not classes"):
        RidgePerTask().fit(X, X[:, 0], t).predict_proba(X, t)
