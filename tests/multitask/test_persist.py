"""Save/load round trips for every family, safe loading, and predict-time errors."""

import numpy as np
import pytest
import torch

from netscope.errors import NetscopeError
from netscope.multitask.base import load_model
from netscope.multitask.families import FAMILIES
from netscope.multitask.settings import Settings

SMALL = Settings(per_task_hidden=(4,), per_task_epochs=2, pooled_epochs=2, gated_epochs=2,
                 stage_epochs=(1, 1, 1), batch_size=8)


@pytest.mark.parametrize("key", list(FAMILIES))
def test_round_trip(tmp_path, tiny, key):
    X, y, t = tiny
    labels = np.array(["a", "b", "c", "d"])[t]
    model = FAMILIES[key].build(SMALL, None).fit(X, y, labels)
    path = model.save(tmp_path / key)
    again = load_model(path)
    assert type(again) is type(model)
    np.testing.assert_allclose(again.predict(X, labels), model.predict(X, labels), atol=1e-12)
    saved = {k: v for k, v in model.get_params().items() if k != "progress"}
    assert again.get_params() == {**saved, "progress": None}  # tuples come back as tuples
    assert {k: type(v) for k, v in again.get_params().items()} == \
        {k: type(v) for k, v in {**saved, "progress": None}.items()}


def test_params_are_keyword_only_and_complete(tmp_path, tiny):
    import inspect

    from netscope.multitask.base import REGISTRY

    say = print
    for cls in REGISTRY.values():
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params), cls.__name__
        est = cls(progress=say)
        assert est.get_params(deep=True)["progress"] is say  # nothing dropped
        assert set(est.get_params()) == {p.name for p in params}
        with pytest.raises(TypeError):
            cls(0)  # positional hyper-parameters are refused, as in scikit-learn


def test_format_1_files_load_their_lists_as_tuples(tmp_path, tiny):
    import json

    X, y, t = tiny
    model = FAMILIES["shared-trunk-accumulate"].build(SMALL, None).fit(X, y, t)
    path = model.save(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    assert config["params"]["stage_epochs"] == {"__tuple__": [1, 1, 1]}
    config["params"]["stage_epochs"], config["format"] = [1, 1, 1], 1  # as format 1 wrote it
    (path / "config.json").write_text(json.dumps(config))
    assert load_model(path).stage_epochs == (1, 1, 1)


def test_save_leaves_no_temporary_files(tmp_path, tiny):
    X, y, t = tiny
    model = FAMILIES["pooled-ridge"].build(SMALL, None).fit(X, y, t)
    model.save(tmp_path / "m")
    model.save(tmp_path / "m")  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_unknown_task_at_predict(tiny):
    X, y, t = tiny
    model = FAMILIES["ridge-per-task"].build(SMALL, None).fit(X, y, t)
    with pytest.raises(NetscopeError, match="task 7 was not seen in fit"):
        model.predict(X[:2], [0, 7], unseen="error")
    with pytest.raises(NetscopeError, match="unseen must be one of"):
        model.predict(X[:2], [0, 7], unseen="zero")


def test_wrong_feature_count(tiny):
    X, y, t = tiny
    model = FAMILIES["pooled-mlp"].build(SMALL, None).fit(X, y, t)
    with pytest.raises(NetscopeError, match="X has 2 features but the model was fit on 3"):
        model.predict(X[:, :2], t)


def test_predict_before_fit():
    with pytest.raises(NetscopeError, match="not fitted yet"):
        FAMILIES["task-gated"].build(SMALL, None).predict(np.zeros((1, 3)), [0])


def test_nan_in_fit(tiny):
    X, y, t = tiny
    X = X.copy()
    X[5, 1] = np.nan
    with pytest.raises(NetscopeError, match="X column 1 holds NaN"):
        FAMILIES["per-task-mlp"].build(SMALL, None).fit(X, y, t)


def test_unsafe_state_file_is_refused(tmp_path, tiny):
    X, y, t = tiny
    path = FAMILIES["pooled-ridge"].build(SMALL, None).fit(X, y, t).save(tmp_path / "m")

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"coef": Evil()}, path / "state.pt")
    with pytest.raises(NetscopeError, match="cannot be loaded safely"):
        load_model(path)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(NetscopeError, match="not a saved netscope model"):
        load_model(tmp_path)


def test_set_params(tiny):
    m = FAMILIES["pooled-mlp"].build(SMALL, None)
    assert m.set_params(epochs=7) is m and m.get_params()["epochs"] == 7
    with pytest.raises(NetscopeError, match="has no parameter 'epoch'; valid: hidden, epochs"):
        m.set_params(epoch=3)


def test_estimators_display_themselves_in_jupyter(tiny):
    from netscope.multitask.linear.ridge import MeanRegularizedRidge

    X, y, t = tiny
    model = MeanRegularizedRidge(folds=4)
    before = model._repr_html_()
    assert "(mean-regularized MTL ridge, not fitted)" in before
    assert "<td>folds</td><td><code>4</code></td>" in before and "penalties_" not in before
    page = model.fit(X, y, t)._repr_html_()
    assert "(mean-regularized MTL ridge, fitted)" in page and "not fitted" not in page
    chosen = repr(model.penalties_)
    assert f"<td>penalties_</td><td><code>{chosen}</code></td>" in page
    assert "<td>tasks</td><td><code>0, 1, 2, 3</code></td>" in page
