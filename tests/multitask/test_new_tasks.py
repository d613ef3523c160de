"""Tasks never seen in fit: every family predicts them at its population level, and the
population level is what each family documents."""

import numpy as np
import pytest

from netscope.multitask.base import load_model
from netscope.multitask.families import FAMILIES
from netscope.multitask.settings import Settings

SMALL = Settings(per_task_hidden=(4,), per_task_epochs=2, pooled_epochs=2, gated_epochs=2,
                 stage_epochs=(1, 1, 1), batch_size=8)


def fitted(key, tiny):
    X, y, t = tiny
    labels = np.array(["a", "b", "c", "d"])[t]
    return FAMILIES[key].build(SMALL, None).fit(X, y, labels), X


def known_average(model, X):
    return np.mean([model.predict(X, [k] * len(X)) for k in model.tasks_], axis=0)


@pytest.mark.parametrize("key", list(FAMILIES))
def test_every_family_predicts_a_new_task(tmp_path, tiny, key):
    model, X = fitted(key, tiny)
    said = []
    model.progress = said.append
    mixed = model.predict(X[:6], ["a", "zz", "b", "zz", "yy", "a"])
    assert np.isfinite(mixed).all()
    np.testing.assert_allclose(mixed[[0, 2, 5]], model.predict(X[[0, 2, 5]], ["a", "b", "a"]))
    assert mixed[1] == pytest.approx(model.predict(X[1:2], ["yy"])[0])  # one population
    assert any("not seen in fit" in m and "2 task(s)" in m for m in said)
    model.progress = None
    again = load_model(model.save(tmp_path / key))
    np.testing.assert_allclose(again.predict(X[:4], ["new"] * 4),
                               model.predict(X[:4], ["new"] * 4), atol=1e-12)


@pytest.mark.parametrize("key", ["ridge-per-task", "per-task-mlp", "shared-trunk-accumulate",
                                 "learned-task-covariance"])
def test_per_task_families_average_their_tasks(tiny, key):
    model, X = fitted(key, tiny)
    np.testing.assert_allclose(model.predict(X, ["new"] * len(X)), known_average(model, X),
                               atol=1e-10)


@pytest.mark.parametrize("key", ["pooled-ridge", "pooled-mlp"])
def test_pooled_families_ignore_the_task(tiny, key):
    model, X = fitted(key, tiny)
    np.testing.assert_allclose(model.predict(X, ["new"] * len(X)),
                               model.predict(X, ["c"] * len(X)), atol=1e-12)


def test_mixed_model_uses_the_fixed_effects(tiny):
    model, X = fitted("mixed-effects", tiny)
    expected = X @ model.fixed_effects_[:-1] + model.fixed_effects_[-1]
    np.testing.assert_allclose(model.predict(X, ["new"] * len(X)), expected, atol=1e-12)


def test_mean_regularized_ridge_uses_the_shared_weights(tiny):
    from netscope.multitask.linear.ridge import solve_mean_regularized, task_grams, with_constant

    model, X = fitted("mtl-ridge", tiny)
    _, y, t = tiny
    A, b = task_grams(with_constant(X), y, t, 4)
    w0, _ = solve_mean_regularized(A, b, *model.penalties_, free=X.shape[1])
    np.testing.assert_allclose(model.predict(X, ["new"] * len(X)), with_constant(X) @ w0,
                               atol=1e-10)


def test_gated_network_uses_the_mean_gate(tiny):
    import torch

    model, X = fitted("task-gated", tiny)
    with torch.no_grad():
        gate = torch.sigmoid(model.net_.embed.weight).mean(0)
        h = gate * torch.relu(model.net_.project(torch.from_numpy(X)))
        expected = model.net_.out(torch.relu(model.net_.hidden(h))).squeeze(-1).numpy()
    np.testing.assert_allclose(model.predict(X, ["new"] * len(X)), expected, atol=1e-12)


def test_ensemble_weighs_its_members_population_predictions(tiny):
    model, X = fitted("ensemble", tiny)
    expected = sum(w * m.predict(X, ["new"] * len(X)) for w, m in
                   zip(model.weights_, model.members_, strict=True))
    np.testing.assert_allclose(model.predict(X, ["new"] * len(X)), expected, atol=1e-10)
