"""Several classes: softmax forms of the linear families equal scikit-learn's multinomial
logistic regression, every family predicts probabilities that sum to one (its own form or
one-vs-rest), the metrics equal scikit-learn's, and a run writes the pictures."""

import numpy as np
import pandas as pd
import pytest

from netscope.multitask.families import FAMILIES, families_for
from netscope.multitask.linear.ridge import MeanRegularizedRidge, PooledRidge, RidgePerTask


def grouped(T=4, n=60, K=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(T * n, 3))
    t = np.repeat(np.arange(T), n)
    logits = X @ rng.normal(size=(3, K)) + rng.normal(0, 1, (T, K))[t]
    P = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = (rng.uniform(size=(T * n, 1)) > P.cumsum(1)).sum(1).astype(float)
    return X, y, t


def test_softmax_per_task_and_pooled_equal_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    X, y, t = grouped()
    m = RidgePerTask(loss="multinomial", penalties=(2.0,)).fit(X, y, t)
    assert m.coef_.shape == (3, 4, 4)  # class, task, features + constant
    for k in range(4):
        ref = LogisticRegression(C=1 / 2.0, tol=1e-12, max_iter=10_000).fit(X[t == k], y[t == k])
        np.testing.assert_allclose(m.predict(X[t == k], t[t == k]),
                                   ref.predict_proba(X[t == k]), atol=1e-6)
        np.testing.assert_allclose(m.coef_[:, k, :-1], ref.coef_, atol=1e-5)
    m = PooledRidge(loss="multinomial", penalties=(0.5,)).fit(X, y, t)
    ref = LogisticRegression(C=2.0, tol=1e-12, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(m.predict(X, t), ref.predict_proba(X), atol=1e-6)


def test_a_class_a_task_never_had_gets_its_smoothed_rate():
    X, y, t = grouped()
    y = y.copy()
    y[(t == 1) & (y == 2)] = 0  # task 1 never has class 2
    y[t == 2] = 1  # task 2 has one class only
    said = []
    m = RidgePerTask(loss="multinomial", progress=said.append).fit(X, y, t)
    P1, P2 = m.predict(X[:5], [1] * 5), m.predict(X[:5], [2] * 5)
    np.testing.assert_allclose(P1[:, 2], 0.5 / (60 + 1))
    np.testing.assert_allclose(P2, np.tile([0.5 / 61, 60 / 61, 0.5 / 61], (5, 1)))
    np.testing.assert_allclose(P1.sum(1), 1.0)
    assert any("2 task(s) lack some classes" in line for line in said)
    # a new task: the weights averaged over the tasks that had each class
    new = m.predict(X[:5], ["new"] * 5)
    np.testing.assert_allclose(new.sum(1), 1.0)
    assert (new > 0.01).all()


def test_mean_regularized_has_no_softmax_form_and_says_what_to_use():
    X, y, t = grouped(T=3, n=40)
    with pytest.raises(Exception, match="no softmax form; for several classes use OneVsRest"):
        MeanRegularizedRidge(loss="multinomial").fit(X, y, t)


def test_multiclass_metrics_equal_scikit_learn():
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    from netscope.multitask.comparison.metrics import METRICS

    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 200).astype(float)
    P = rng.dirichlet(np.ones(4), 200)
    got = {m.key: m.fn(y, P, 1.0) for m in METRICS["multiclass"]}
    assert got["log_loss"] == pytest.approx(log_loss(y, P), abs=1e-12)
    assert got["auc"] == pytest.approx(roc_auc_score(y, P, multi_class="ovr"), abs=1e-12)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, P.argmax(1)), abs=1e-12)
    assert got["brier"] == pytest.approx(np.mean(((P - np.eye(4)[y.astype(int)]) ** 2)
                                                 .sum(1)), abs=1e-12)


def test_every_family_with_a_yes_no_form_takes_several_classes():
    assert set(families_for("multiclass")) == set(families_for("binary"))
    native = {k for k, f in FAMILIES.items() if "multiclass" in f.forms}
    assert native == {"ridge-per-task", "pooled-ridge", "ensemble", "per-task-mlp",
                      "pooled-mlp", "shared-trunk-accumulate", "shared-trunk-random",
                      "task-gated", "shared-bottom", "mmoe", "ple", "cross-stitch"}
    ovr = FAMILIES["mixed-effects"].for_kind("multiclass")
    assert ovr.label.endswith("one-vs-rest") and ovr.estimator.endswith(":OneVsRest")


def test_one_vs_rest_equals_its_yes_no_models_normalized(tmp_path):
    from netscope.multitask import load_model
    from netscope.multitask.one_vs_rest import OneVsRest

    X, y, t = grouped()
    m = OneVsRest(family="mixed-effects", member={"loss": "log_loss"}).fit(X, y, t)
    fam = FAMILIES["mixed-effects"].estimator_class()
    parts = np.column_stack([fam(loss="log_loss").fit(X, (y == k).astype(float), t)
                             .predict(X[:7], t[:7]) for k in range(3)])
    np.testing.assert_allclose(m.predict(X[:7], t[:7]), parts / parts.sum(1, keepdims=True),
                               atol=1e-10)
    m.classes_ = ("r", "g", "b")
    again = load_model(m.save(tmp_path / "ovr"))
    np.testing.assert_allclose(again.predict_proba(X[:7], t[:7]), m.predict(X[:7], t[:7]),
                               atol=1e-12)
    np.testing.assert_array_equal(again.predict_labels(X[:7], t[:7]),
                                  np.array(["r", "g", "b"])[m.predict(X[:7], t[:7]).argmax(1)])
    new = again.predict(X[:3], ["nobody"] * 3)  # each class's fixed effects, normalized
    np.testing.assert_allclose(new.sum(1), 1.0)
    with pytest.raises(Exception, match="at least 3 classes"):
        OneVsRest().fit(X, (y > 0).astype(float), t)


def test_a_multiclass_run_of_every_family(tmp_path):
    """Every family on a three-class file: each is scored by the multiclass metrics, the
    classes are named in results.json, the pictures are written."""
    import json

    from netscope.cli import main

    X, y, t = grouped(T=5, n=40)
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "shop": t,
                  "colour": np.array(["red", "green", "blue"])[y.astype(int)]}).to_csv(
        tmp_path / "c.csv", index=False)
    keys = families_for("multiclass")
    rc = main(["multitask", "run", "--csv", str(tmp_path / "c.csv"), "--task-column", "shop",
               "--target-column", "colour", "--quiet", "--out", str(tmp_path / "out"),
               "--max-epochs", "5", "--families", ",".join(keys)])
    assert rc == 0
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["target"] == {"name": "colour", "kind": "multiclass",
                             "classes": ["blue", "green", "red"]}
    rows = {r["family"]: r for r in doc["summary"]}
    assert set(rows) == set(keys)
    for r in rows.values():
        assert 0.3 < r["auc"] <= 1 and 0 < r["log_loss"] < 3 and 0 <= r["brier"] <= 2
    assert (tmp_path / "out" / "roc.png").stat().st_size > 5000
    assert (tmp_path / "out" / "gain_auc_mtl-ridge.png").stat().st_size > 5000
    assert (tmp_path / "out" / "reliability.png").stat().st_size > 5000
    assert "AUC (macro, one-vs-rest)" in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.parametrize("key", ["per-task-mlp", "pooled-mlp", "shared-trunk-accumulate",
                                 "task-gated"])
def test_networks_take_several_classes_with_a_softmax_head(tmp_path, key):
    """One output per class: probabilities that sum to one, well above chance on data the
    features separate, the same after saving and loading, and for a new task."""
    from netscope.multitask import load_model
    from netscope.multitask.settings import Settings

    rng = np.random.default_rng(0)
    X = rng.normal(size=(360, 2))
    t = np.repeat(np.arange(3), 120)
    y = np.digitize(X[:, 0] + 0.3 * X[:, 1], [-0.4, 0.4]).astype(float)
    fam = FAMILIES[key].for_kind("multiclass")
    assert fam.label.endswith("(softmax)")
    m = fam.build(Settings(training="tuned", max_epochs=60, patience=10)).fit(X, y, t)
    P = m.predict(X, t)
    assert P.shape == (360, 3)
    np.testing.assert_allclose(P.sum(1), 1.0)
    assert np.mean(P.argmax(1) == y) > 0.8
    again = load_model(m.save(tmp_path / key))
    np.testing.assert_allclose(again.predict(X[:9], t[:9]), P[:9], atol=1e-12)
    new = m.predict(X[:4], ["other"] * 4)
    np.testing.assert_allclose(new.sum(1), 1.0)


def test_every_metric_per_task_equals_the_metric_on_that_tasks_test_rows(tmp_path):
    """per_task_metrics.csv: log loss, AUC, accuracy and Brier of each task's test rows,
    per family; a metric a task cannot have (AUC where its test rows hold one class) is
    empty."""
    from sklearn.metrics import log_loss, roc_auc_score

    from netscope.data import load_table
    from netscope.multitask import compare, protocols
    from netscope.render.comparison import task_metric_rows

    X, y, t = grouped(T=4, n=60)
    y[(t == 3)] = 1  # task 3: one class only, in training and test rows
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "shop": t,
                  "colour": np.array(["red", "green", "blue"])[y.astype(int)]}).to_csv(
        tmp_path / "c.csv", index=False)
    data = load_table(tmp_path / "c.csv", "shop", "colour")
    proto = protocols.lecture(data)
    comp = compare(data, proto, families=["pooled-ridge", "ridge-per-task"])
    rows = pd.DataFrame(task_metric_rows(comp))
    assert len(rows) == 4 * 2 and set(rows.columns) >= {"log_loss", "auc", "accuracy", "brier"}
    test = proto.splits[0].test
    for res in comp.results:
        for k in range(4):
            mine = data.task[test] == k
            yk, pk = res.y_true[mine], res.y_pred[mine]
            row = rows[(rows.family == res.family.key) & (rows.task == data.task_names[k])]
            assert float(row.log_loss.iloc[0]) == pytest.approx(
                log_loss(yk, pk, labels=[0, 1, 2]), rel=1e-9)
            if len(np.unique(yk)) == 3:
                assert float(row.auc.iloc[0]) == pytest.approx(
                    roc_auc_score(yk, pk, multi_class="ovr"), rel=1e-9)
    assert (rows[rows.task == data.task_names[3]].auc == "").all()  # empty in the CSV
