"""Several targets on the same rows: loading, masked losses, the comparison and its files,
the MMoE paper's synthetic data, and the errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from netscope.cli import main
from netscope.data.targets_table import load_targets_table
from netscope.errors import NetscopeError
from netscope.multitask.settings import Settings

FAST = Settings(training="fixed", joint_epochs=4, pooled_epochs=4, stage_epochs=(1, 1, 1),
                gated_epochs=2, expert_widths=(8, 4), experts=2, tower_hidden=3)


def _table(tmp_path, n=60, missing=10, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    df = pd.DataFrame({"a": a, "b": b, "shop": rng.choice(["x", "y"], n),
                       "score": 2 * a + 0.1 * rng.normal(size=n),
                       "passed": np.where(a + b > 0, "yes", "no"),
                       "visits": rng.poisson(np.exp(0.3 * b))})
    df.loc[: missing - 1, "passed"] = None
    path = tmp_path / "rows.csv"
    df.to_csv(path, index=False)
    return path


def test_each_target_keeps_its_kind_and_rows_lacking_one_keep_the_others(tmp_path):
    d = load_targets_table(_table(tmp_path), ["score", "passed", "visits"],
                           target_kind=["auto", "auto", "count"])
    assert d.kinds == ("regression", "binary", "count")
    assert d.classes[1] == ("no", "yes")
    assert d.X.shape == (60, 4) and np.isnan(d.Y[:10, 1]).all()
    r, j, y = d.observations(np.arange(60))
    assert len(r) == 3 * 60 - 10 and (np.bincount(j) == [60, 50, 60]).all()
    assert d.missing_lines() == ["10 row(s) have no 'passed': they train and test the other "
                                 "target(s) only (its loss is masked there)"]


def test_the_loss_of_a_batch_with_a_missing_target_is_the_masked_mean():
    """The trainer's per-task losses on observations (rows lacking a target have none)
    equal sum_i m_ij l_ij / sum_i m_ij on the dense table with garbage where m = 0, and
    their gradients too: the missing rows train the other target only."""
    from netscope.multitask.networks.experts import MMoE
    from netscope.multitask.networks.joint import observation_loss, task_means

    torch.manual_seed(0)
    net = MMoE(3, 2, 1, widths=(5,), tower=2, experts=2)
    X = torch.randn(8, 3, dtype=torch.float64)
    Y = torch.randn(8, 2, dtype=torch.float64)
    mask = torch.ones(8, 2, dtype=torch.float64)
    mask[:4, 1] = 0  # target 1 missing on half the rows
    Y[:4, 1] = 1e6  # what those rows would hold: never read
    r, j = torch.nonzero(mask, as_tuple=True)
    kinds, classes = torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long)
    L, present = task_means(observation_loss(net(X[r], j), Y[r, j], j, kinds, classes), j)
    dense = torch.stack([((net(X, torch.full((8,), k))[:, 0] - Y[:, k]) ** 2 * mask[:, k])
                         .sum() / mask[:, k].sum() for k in range(2)])
    torch.testing.assert_close(L, dense)
    g1 = torch.autograd.grad(L.sum(), list(net.parameters()))
    g2 = torch.autograd.grad(dense.sum(), list(net.parameters()))
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b)


def test_mini_batches_take_whole_rows_with_every_target_they_have():
    from netscope.multitask.networks.joint import JointNetwork

    net = JointNetwork(batch_size=2)
    net.batch_size_, net._train_mask = 2, None
    net._rows_all = np.array([0, 0, 1, 2, 2, 3])  # row 1 and 3 lack the second target
    batches = net._batches(6, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(6))
    for b in batches:
        rows = net._rows_all[b]
        assert len(set(rows.tolist())) <= 2
        for r in set(rows.tolist()):  # all of a row's observations together
            assert (rows == r).sum() == (net._rows_all == r).sum()


def test_comparison_of_mixed_targets_writes_per_target_results(tmp_path, capsys):
    out = tmp_path / "res"
    rc = main(["multitask", "run", "--csv", str(_table(tmp_path)), "--target-column",
               "score,passed", "--out", str(out), "--training", "fixed", "--joint-epochs",
               "3", "--pooled-epochs", "2", "--expert-widths", "8,4", "--experts", "2",
               "--families", "pooled-ridge,pooled-mlp,mmoe,ple,task-gated",
               "--balancing", "sum,mgda", "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "target 'score' (a number)" in text and "target 'passed' (yes/no" in text
    assert "task-gated: left out, it takes one kind of target" in text
    summary = pd.read_csv(out / "results.csv")
    assert set(summary["target"]) == {"score", "passed"}
    assert set(summary["family"]) == {"pooled-ridge", "pooled-mlp", "mmoe", "mmoe+mgda",
                                      "ple", "ple+mgda"}
    assert summary.loc[summary["family"] == "mmoe+mgda", "balancing"].eq("mgda").all()
    assert summary.loc[summary["family"] == "mmoe+mgda", "conflict_share"].between(0, 1).all()
    gains = pd.read_csv(out / "gains.csv")
    assert len(gains) == 4 * 2  # four joint rows x two targets
    mine = summary.set_index(["family", "target"])
    g = gains.set_index(["family", "target"]).loc[("mmoe", "score")]
    expected = (mine.loc[("mmoe", "score"), "mse"] - mine.loc[("pooled-mlp", "score"), "mse"]) \
        / mine.loc[("pooled-mlp", "score"), "mse"]
    assert g["change_vs_mlp"] == pytest.approx(expected)
    gates = pd.read_csv(out / "gates.csv")
    assert set(gates["family"]) == {"mmoe", "mmoe+mgda", "ple", "ple+mgda"}
    weights = gates.filter(like="expert_").fillna(0).to_numpy()
    np.testing.assert_allclose(weights.sum(1), 1.0)  # each target's gate is a softmax
    assert (out / "gates_mmoe.png").is_file() and (out / "report.html").is_file()
    doc = json.loads((out / "results.json").read_text())
    assert doc["targets"][1] == {"name": "passed", "kind": "binary", "classes": ["no", "yes"]}
    assert doc["notes"][0].startswith("10 row(s) have no 'passed'")


def test_targets_of_one_kind_take_the_shared_trunk_and_the_gated_network(tmp_path):
    from netscope.data.targets_table import TargetsData
    from netscope.multitask.several.compare import compare_targets

    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 3))
    Y = np.column_stack([X[:, 0], X[:, 0] + X[:, 1]]) + 0.1 * rng.normal(size=(80, 2))
    d = TargetsData(X, Y, ["u", "v"], ("regression", "regression"), ((), ()), ["a", "b", "c"])
    comp = compare_targets(d, FAST, ["shared-trunk-accumulate", "task-gated", "pooled-ridge"],
                           ("sum", "upgrad"))
    assert not comp.skipped
    rows = {(r["family"], r["target"]): r for r in comp.summary()}
    assert ("task-gated+upgrad", "v") in rows and ("shared-trunk-accumulate+upgrad", "u") in rows
    assert rows[("pooled-ridge", "u")]["explained_variance"] > 0.9


def test_mmoe_synthetic_data_has_the_asked_correlation():
    from netscope.multitask.several.synthetic import linear_cosine, mmoe_synthetic

    for rho in (0.2, 0.5, 0.9):
        assert linear_cosine(rho) == pytest.approx(rho)
    lo, hi = mmoe_synthetic(4000, 0.2, seed=1), mmoe_synthetic(4000, 0.9, seed=1)
    r = [np.corrcoef(d.Y.T)[0, 1] for d in (lo, hi)]
    assert r[0] < r[1]  # the targets' correlation follows rho


@pytest.mark.parametrize("args, message", [
    (["--target-column", "score,score"], "names 'score' twice"),
    (["--target-column", "score,flat"], "'flat' is constant"),
    (["--target-column", "score,empty"], "'empty' is empty on every row"),
    (["--target-column", "score,passed", "--task-column", "shop"],
     "with --task-column are not supported"),
    (["--target-column", "score,passed", "--experts", "0"],
     "--experts: expected a whole number from 1"),
    (["--target-column", "score,passed", "--balancing", "upgard"], "unknown balancing"),
    (["--target-column", "score,passed", "--families", "mixed-effects"],
     "does not take several targets"),
    (["--target-column", "score,passed", "--protocol", "new-tasks"], "new tasks do not apply"),
    (["--target-column", "score,passed", "--target-kind", "auto,auto,count"],
     "3 kinds for 2 targets"),
])
def test_bad_several_target_runs_say_what_is_wrong(tmp_path, capsys, args, message):
    path = _table(tmp_path)
    df = pd.read_csv(path)
    df["flat"], df["empty"] = 1.0, np.nan
    df.to_csv(path, index=False)
    out = tmp_path / "res"
    try:
        rc = main(["multitask", "run", "--csv", str(path), "--out", str(out), "--quiet", *args])
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and message in err
    assert not out.exists()  # nothing half-written


def test_mmoe_with_zero_experts_is_refused():
    from netscope.multitask.networks.joint import JointNetwork

    with pytest.raises(NetscopeError, match="at least one shared expert"):
        JointNetwork(experts=0).fit(np.zeros((4, 2)), np.zeros(4), [0, 1, 0, 1])


def test_saved_models_predict_table_rows_as_the_run_did(tmp_path):
    """--save-models for several targets: one model of every target (MMoE) or one per
    target (ridge, trees), with their preprocessing; table rows predicted from them equal
    the run's own test predictions, in each target's units."""
    from netscope.multitask.several.compare import compare_targets
    from netscope.multitask.several.pipeline import predict_targets_table, save_target_models

    path = _table(tmp_path)
    data = load_targets_table(path, ["score", "passed"])
    comp = compare_targets(data, FAST, ["pooled-ridge", "boosted-trees", "mmoe"])
    save_target_models(comp, tmp_path / "models")
    df = pd.read_csv(path)
    test = comp.splits[0].test
    for key in ("pooled-ridge", "boosted-trees", "mmoe"):
        out, _ = predict_targets_table(tmp_path / "models" / key, df.iloc[test])
        run = comp.runs[key][0]
        np.testing.assert_allclose(out["predicted_score"], run.y_pred[0], rtol=1e-9)
        has = df["passed"].iloc[test].notna().to_numpy()
        np.testing.assert_allclose(out["p_passed_yes"].to_numpy()[has], run.y_pred[1],
                                   rtol=1e-9)
        assert set(out["predicted_passed"]) <= {"yes", "no"}


def test_save_and_predict_from_the_command_line(tmp_path, capsys):
    path = _table(tmp_path)
    out = tmp_path / "res"
    assert main(["multitask", "run", "--csv", str(path), "--target-column", "score,visits",
                 "--target-kind", "regression,count", "--families", "pooled-ridge,ple",
                 "--training", "fixed", "--joint-epochs", "2", "--out", str(out),
                 "--save-models", "--quiet"]) == 0
    pred = tmp_path / "pred.csv"
    assert main(["multitask", "predict", str(out / "models" / "ple"), "--csv", str(path),
                 "--out", str(pred)]) == 0
    got = pd.read_csv(pred)
    assert {"predicted_score", "predicted_visits"} <= set(got.columns)
    assert (got["predicted_visits"] > 0).all()  # a count's predicted mean


def test_splits_in_worker_processes_give_the_numbers_of_one_process(tmp_path):
    from netscope.multitask.several.compare import compare_targets

    data = load_targets_table(_table(tmp_path), ["score", "passed"])
    one = compare_targets(data, FAST, ["pooled-ridge", "mmoe"], splits=2)
    two = compare_targets(data, FAST, ["pooled-ridge", "mmoe"], splits=2, jobs=2)
    for a, b in zip(one.summary(), two.summary(), strict=True):
        assert a["family"] == b["family"] and a["target"] == b["target"]
        key = "mse" if a["kind"] == "regression" else "log_loss"
        assert a[key] == pytest.approx(b[key], rel=1e-9)
    assert two.gates()["mmoe"].shape == (2, 2)  # the first split's models came back
