"""Gradient balancing: the strategies' defining properties on conflicting tasks, the batched
Jacobians against per-task backward passes, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from netscope.errors import NetscopeError
from netscope.multitask.balancing import BALANCINGS, check_balancings
from netscope.multitask.balancing.balancer import Balancer
from netscope.multitask.balancing.weightings import Uncertainty

# two tasks whose gradients conflict (cosine < 0), plus a third that agrees with the first
J2 = np.array([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]])


def test_the_example_gradients_conflict():
    cos = J2[0] @ J2[1] / np.linalg.norm(J2[0]) / np.linalg.norm(J2[1])
    assert cos < 0
    step = Balancer("mean", 2).step(J2, np.ones(2), np.arange(2))
    assert step.conflict


def test_pcgrad_removes_the_conflicting_component():
    """PCGrad projects each gradient off the other where they conflict: the update is the
    sum of g1 - (g1.g2/|g2|^2) g2 and g2 - (g2.g1/|g1|^2) g1, and each projected part is
    orthogonal to the gradient it was projected off."""
    g1, g2 = J2
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
    p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    assert abs(p1 @ g2) < 1e-12 and abs(p2 @ g1) < 1e-12
    step = Balancer("pcgrad", 2).step(J2, np.ones(2), np.arange(2))
    np.testing.assert_allclose(step.shared, p1 + p2, atol=1e-9)
    assert step.shared @ g1 > 0 and step.shared @ g2 > 0  # no task's loss goes up


def test_upgrad_agrees_with_every_task_and_equals_torchjd():
    from torchjd.aggregation import UPGrad

    rng = np.random.default_rng(0)
    for J in (J2, rng.normal(size=(5, 12))):
        step = Balancer("upgrad", len(J)).step(J, np.ones(len(J)), np.arange(len(J)))
        assert (J @ step.shared >= -1e-9).all()
        direct = UPGrad()(torch.from_numpy(J)).numpy()
        np.testing.assert_allclose(step.shared, direct, rtol=1e-6, atol=1e-9)


@pytest.mark.filterwarnings("ignore:You are solving a parameterized problem")
@pytest.mark.parametrize("key", [k for k, b in BALANCINGS.items() if b.kind == "aggregator"])
def test_every_aggregator_equals_torchjd_called_on_the_jacobian(key):
    """Through the Gramian (the memory-saving path) or on J itself, the update is torchjd's
    aggregator of the Jacobian."""
    from importlib import import_module

    spec = BALANCINGS[key]
    rng = np.random.default_rng(1)
    J = rng.normal(size=(3, 7))
    module, _, name = spec.make.partition(":")
    cls_name = name.removesuffix("Weighting")
    if key == "imtl-g":
        cls_name = "IMTLG"
    options = dict(spec.options)
    if spec.per_count:
        options["n_tasks"] = 3
    agg = getattr(import_module(module), cls_name)(**options)
    torch.manual_seed(0 * 1_000_003 + 0)  # the balancer seeds GradDrop's draws this way
    direct = agg(torch.from_numpy(J)).numpy()
    step = Balancer(key, 3).step(J, np.ones(3), np.arange(3))
    np.testing.assert_allclose(step.shared, direct, rtol=1e-5, atol=1e-8)


def test_uncertainty_weights_move_to_each_tasks_inverse_variance():
    """With losses held at 1 and 4 (noise variances), the weights 1/(2 e^s) tend to 1/2 and
    1/8: the noisier task gets a quarter of the weight."""
    u = Uncertainty(2, lr=0.05)
    for _ in range(3000):
        w = u.weights(np.arange(2), np.array([1.0, 4.0]), np.zeros((2, 1)))
    np.testing.assert_allclose(w, [0.5, 0.125], rtol=0.02)
    np.testing.assert_allclose(np.exp(u.log_var), [1.0, 4.0], rtol=0.02)


def test_uncertainty_in_training_weights_the_noisier_task_less():
    from netscope.multitask.networks.joint import JointNetwork

    rng = np.random.default_rng(0)
    n = 600
    X = rng.normal(size=(n, 3))
    y = np.concatenate([X[:, 0] + 0.1 * rng.normal(size=n), X[:, 1] + 2.0 * rng.normal(size=n)])
    m = JointNetwork(architecture="shared-bottom", balancing="uncertainty", epochs=15,
                     balance_lr=0.05).fit(np.vstack([X, X]), y, np.repeat([0, 1], n),
                                          rows=np.tile(np.arange(n), 2))
    w = m.balance_["mean_weights"]
    assert w[0] > 3 * w[1]


def test_dwa_weights_follow_the_rate_of_descent():
    from netscope.multitask.balancing.weightings import DynamicWeightAverage

    d = DynamicWeightAverage(2)
    for losses in ([1.0, 1.0], [0.5, 1.0]):  # task 0 halves, task 1 stays
        d.weights(np.arange(2), np.array(losses), None)
        d.end_epoch()
    r = np.array([0.5, 1.0])
    expected = 2 * np.exp(r / 2) / np.exp(r / 2).sum()
    np.testing.assert_allclose(d.weights(np.arange(2), np.ones(2), None), expected)


def test_gradnorm_raises_the_weight_of_the_task_that_trains_slower():
    from netscope.multitask.balancing.weightings import GradNorm

    g = GradNorm(2, lr=0.05)
    J = np.array([[1.0, 0.0], [0.0, 1.0]])
    g.weights(np.arange(2), np.array([1.0, 1.0]), J)
    for _ in range(200):  # task 0's loss fell to a tenth, task 1's did not move
        w = g.weights(np.arange(2), np.array([0.1, 1.0]), J)
    assert w[1] > w[0] and abs(w.sum() - 2) < 1e-9


def test_rlw_weights_are_a_scaled_softmax_each_step():
    b = Balancer("rlw", 3, seed=4)
    w = [b.step(np.eye(3), np.ones(3), np.arange(3)).weights for _ in range(2)]
    assert abs(w[0].sum() - 3) < 1e-9 and not np.allclose(w[0], w[1])


# -- batched Jacobians equal per-task backward passes ---------------------------------------
def _autograd_rows(losses_fn, params, k):
    rows = []
    for i in range(k):
        grads = torch.autograd.grad(losses_fn()[i], params, allow_unused=True,
                                    materialize_grads=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


def test_joint_network_jacobian_is_one_batched_pass_equal_to_per_task_passes():
    from netscope.multitask.networks.experts import MMoE
    from netscope.multitask.networks.joint import task_jacobian, task_means

    torch.manual_seed(0)
    net = MMoE(4, 3, 1, widths=(6, 5), tower=3, experts=2)
    x = torch.randn(20, 4, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 1] * 5)
    y = torch.randn(20, dtype=torch.float64)
    params = list(net.parameters())

    def losses():
        return task_means((net(x, t)[:, 0] - y) ** 2, t)[0]

    batched = torch.cat([g.reshape(3, -1) for g in task_jacobian(losses(), params)], 1)
    torch.testing.assert_close(batched, _autograd_rows(losses, params, 3))


def test_task_gated_jacobian_rows_equal_autograd_per_task():
    from netscope.multitask.networks.flat_train import FlatParams
    from netscope.multitask.networks.gated import GatedNet, gated_balanced_gradient

    rng = np.random.default_rng(2)
    X, t, y = rng.normal(size=(12, 3)), np.array([0, 2, 1, 2, 0, 2] * 2), rng.normal(size=12)
    net = GatedNet(3, 3, 5, 4, seed=1)
    seen = {}

    class Record:
        key = "record"

        def step(self, J, losses, tasks):
            seen.update(J=J, losses=losses, tasks=tasks)
            from netscope.multitask.balancing.balancer import Step
            return Step(J.sum(0), np.ones(len(tasks)), np.ones(len(tasks)), False)

    flat = FlatParams.adopt(list(net.parameters()))
    grad = gated_balanced_gradient(flat, X, t, y, "squared_error", Record())
    grad(np.arange(12), flat.views(np.zeros_like(flat.values)))
    Xt, tt, yt = torch.from_numpy(X), torch.from_numpy(t), torch.from_numpy(y)
    shared = [p for n, p in net.named_parameters() if not n.startswith("embed")]

    def losses():
        return task_means((net(Xt, tt) - yt) ** 2, tt)[0]

    from netscope.multitask.networks.joint import task_means
    np.testing.assert_allclose(seen["losses"], losses().detach().numpy())
    np.testing.assert_allclose(seen["J"], _autograd_rows(losses, shared, 3).numpy(),
                               atol=1e-12)


def test_shared_trunk_rows_and_losses_equal_autograd_per_task():
    from netscope.multitask.networks.shared_trunk import trunk_forward, trunk_grads

    rng = np.random.default_rng(3)
    p = {"W0": rng.normal(size=(3, 5)), "b0": rng.normal(size=5), "W1": rng.normal(size=(5, 4)),
         "b1": rng.normal(size=4)}
    Z, y = rng.normal(size=(2, 6, 3)), rng.integers(0, 2, size=(2, 6)).astype(float)
    hw, hb, mask = rng.normal(size=(2, 4)), rng.normal(size=2), np.ones((2, 6))
    mask[1, 4:] = 0
    g = trunk_grads(p, Z, hw, hb, y, mask, 0, "log_loss")
    P = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    for task in range(2):
        z = trunk_forward(P, torch.from_numpy(Z[task]), torch.from_numpy(hw[task]),
                          torch.tensor(hb[task]))
        m, yt = torch.from_numpy(mask[task]), torch.from_numpy(y[task])
        loss = ((torch.nn.functional.softplus(z) - yt * z) * m).sum() / m.sum()
        assert abs(loss.item() - g["loss"][task]) < 1e-12
        grads = torch.autograd.grad(loss, list(P.values()))
        for name, got in zip(P, grads, strict=True):
            np.testing.assert_allclose(g[name][task], got.numpy(), atol=1e-12)


# -- architectures that reduce to one another ------------------------------------------------
def test_mmoe_with_one_expert_is_the_shared_bottom_network():
    from netscope.multitask.networks.experts import MMoE, SharedBottom

    mmoe = MMoE(4, 3, 1, widths=(6, 5), tower=3, experts=1, seed=5)
    bottom = SharedBottom(4, 3, 1, widths=(6, 5), tower=3, seed=9)
    with torch.no_grad():
        for name in ("W", "b"):
            for a, b in zip(getattr(bottom.bottom, name), getattr(mmoe.experts, name),
                            strict=True):
                a.copy_(b)
        bottom.towers.load_state_dict(mmoe.towers.state_dict())
    x, t = torch.randn(9, 4, dtype=torch.float64), torch.tensor([0, 1, 2] * 3)
    torch.testing.assert_close(mmoe(x, t), bottom(x, t))


def test_ple_without_experts_of_the_tasks_own_is_mmoe():
    from netscope.multitask.networks.experts import PLE, MMoE

    mmoe = MMoE(4, 3, 2, widths=(6, 5), tower=3, experts=3, seed=1)
    ple = PLE(4, 3, 2, widths=(6, 5), tower=3, experts=3, specific=0, levels=1, seed=2)
    with torch.no_grad():
        for a, b in zip(ple.shared[0].parameters(), mmoe.experts.parameters(), strict=True):
            a.copy_(b)
        ple.gate_W[0].copy_(mmoe.gate_W)
        ple.gate_b[0].copy_(mmoe.gate_b)
        ple.towers.load_state_dict(mmoe.towers.state_dict())
    x, t = torch.randn(9, 4, dtype=torch.float64), torch.tensor([2, 1, 0] * 3)
    torch.testing.assert_close(ple(x, t), mmoe(x, t))
    torch.testing.assert_close(ple.gates(x, t), mmoe.gates(x, t))


def test_cross_stitch_at_the_identity_is_separate_columns():
    from netscope.multitask.networks.experts import CrossStitch

    net = CrossStitch(3, 2, 1, widths=(4,), tower=2)
    with torch.no_grad():
        net.stitch[0].copy_(torch.eye(2, dtype=torch.float64))
    x = torch.randn(5, 3, dtype=torch.float64)
    out0 = net(x, torch.zeros(5, dtype=torch.long))
    with torch.no_grad():  # task 1's column changes: task 0's outputs do not
        net.columns[0].W[0][1].add_(1.0)
    torch.testing.assert_close(net(x, torch.zeros(5, dtype=torch.long)), out0)


# -- the course's rule and bad input ----------------------------------------------------------
def test_sum_keeps_the_shared_trunks_course_rule():
    from netscope.multitask.networks.shared_trunk import SharedTrunkMTL

    rng = np.random.default_rng(0)
    X, t = rng.normal(size=(90, 3)), np.repeat(np.arange(3), 30)
    y = X[:, 0] + rng.normal(size=90)
    a = SharedTrunkMTL(stage_epochs=(2, 2, 2), pooled_epochs=2).fit(X, y, t)
    b = SharedTrunkMTL(stage_epochs=(2, 2, 2), pooled_epochs=2, balancing="sum").fit(X, y, t)
    np.testing.assert_array_equal(a.predict(X, t), b.predict(X, t))
    c = SharedTrunkMTL(stage_epochs=(2, 2, 2), pooled_epochs=2, balancing="mgda").fit(X, y, t)
    assert not np.allclose(a.predict(X, t), c.predict(X, t))
    assert 0 <= c.balance_["conflict_share"] <= 1 and c.balance_["steps"] > 0


def test_unknown_and_repeated_names_are_refused_with_the_list():
    with pytest.raises(NetscopeError, match="unknown balancing 'upgard'; choose from sum, mean"):
        check_balancings(["upgard"])
    with pytest.raises(NetscopeError, match="names 'mgda' twice"):
        check_balancings(["mgda", "mgda"])


def test_a_missing_solver_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "cvxpy" else real(name, *a))
    with pytest.raises(NetscopeError, match=r"needs cvxpy.*netscope\[balancing\].*cagrad"):
        Balancer("cagrad", 2)
    Balancer("upgrad", 2)  # others still build


def test_random_batches_cannot_be_balanced():
    from netscope.multitask.networks.shared_trunk import SharedTrunkMTL

    X, t = np.zeros((6, 2)), np.repeat(np.arange(3), 2)
    with pytest.raises(NetscopeError, match="needs method 'accumulate'"):
        SharedTrunkMTL(method="random", balancing="upgrad").fit(X, np.zeros(6), t)


# -- a grouped run with several strategies ----------------------------------------------------
def test_grouped_run_gives_each_strategy_its_row_and_the_gains(tmp_path, capsys):
    from netscope.cli import main

    rng = np.random.default_rng(0)
    n = 120
    df = {"task": np.repeat(["a", "b", "c", "d"], n // 4), "x1": rng.normal(size=n),
          "x2": rng.normal(size=n)}
    df["y"] = df["x1"] * np.repeat([1.0, -1.0, 2.0, 0.5], n // 4) + 0.1 * rng.normal(size=n)
    import pandas as pd

    path = tmp_path / "g.csv"
    pd.DataFrame(df).to_csv(path, index=False)
    out = tmp_path / "res"
    rc = main(["multitask", "run", "--csv", str(path), "--task-column", "task",
               "--target-column", "y", "--families", "ridge-per-task,task-gated,mmoe",
               "--balancing", "sum,pcgrad,uncertainty", "--training", "fixed",
               "--gated-epochs", "3", "--joint-epochs", "2", "--out", str(out), "--quiet"])
    assert rc == 0
    summary = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert summary["family"].tolist() == [
        "ridge-per-task", "task-gated", "task-gated+pcgrad", "task-gated+uncertainty",
        "mmoe", "mmoe+pcgrad", "mmoe+uncertainty"]
    assert summary["balancing"].tolist() == ["", "sum", "pcgrad", "uncertainty", "sum",
                                             "pcgrad", "uncertainty"]
    shares = pd.to_numeric(summary["conflict_share"], errors="coerce")
    assert shares.isna().tolist() == [True, True, False, False, True, False, False]
    gains = pd.read_csv(out / "balancing.csv")
    assert gains[["family", "balancing"]].values.tolist() == [
        ["task-gated", "pcgrad"], ["task-gated", "uncertainty"], ["mmoe", "pcgrad"],
        ["mmoe", "uncertainty"]]
    assert (gains["tasks"] == 4).all()
    assert (out / "balancing_gains.png").is_file()
    assert "conflicting steps" in capsys.readouterr().out


def test_a_missing_solver_stops_a_run_before_training(tmp_path, monkeypatch, capsys):
    import importlib.util

    from netscope.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ecos" else real(name, *a))
    out = tmp_path / "res"
    rc = main(["multitask", "run", "--dataset", "survey", "--families", "task-gated",
               "--balancing", "nash-mtl", "--out", str(out), "--quiet"])
    assert rc == 2 and "needs ecos" in capsys.readouterr().err
    assert not out.exists()


def test_expert_networks_on_grouped_classes_give_every_task_every_class():
    """One softmax loss for all tasks: a task whose rows lack a class still gets a
    probability for it (and a new task the population's)."""
    from netscope.multitask.networks.joint import JointNetwork

    rng = np.random.default_rng(0)
    X, t = rng.normal(size=(90, 3)), np.repeat([0, 1, 2], 30)
    y = rng.integers(0, 3, 90).astype(float)
    y[t == 2] = np.minimum(y[t == 2], 1)  # task 2 never has class 2
    for arch in ("mmoe", "ple", "cross-stitch", "shared-bottom"):
        m = JointNetwork(architecture=arch, loss="multinomial", epochs=2).fit(X, y, t)
        P = m.predict(X, t)
        assert P.shape == (90, 3) and np.allclose(P.sum(1), 1)
        assert m.predict(X[:2], ["new", "new"]).shape == (2, 3)


def test_expert_networks_save_and_load(tmp_path):
    from netscope.multitask.base import load_model
    from netscope.multitask.networks.joint import JointNetwork

    rng = np.random.default_rng(1)
    X, t = rng.normal(size=(60, 3)), np.repeat(["a", "b", "c"], 20)
    y = rng.normal(size=60)
    for arch in ("ple", "cross-stitch"):
        m = JointNetwork(architecture=arch, levels=2, epochs=2, balancing="upgrad",
                         tune=True, max_epochs=3, patience=1).fit(X, y, t)
        again = load_model(m.save(tmp_path / arch))
        assert again.label == m.label and again.balancing == "upgrad"
        np.testing.assert_array_equal(again.predict(X, t), m.predict(X, t))
