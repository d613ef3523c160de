"""Save/load round trips for every family, safe loading, and predict-time errors."""

import numpy as np
import pytest
import torch

from netscope.errors import NetscopeError
from netscope.multitask.base import load_model
from netscope.multitask.families import FAMILIES, Settings

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
    assert again.get_params() == {k: (list(v) if isinstance(v, tuple) else v)
                                  for k, v in model.get_params().items()}


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
        model.predict(X[:2], [0, 7])


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
    from netscope.multitask.ridge import MeanRegularizedRidge

    X, y, t = tiny
    model = MeanRegularizedRidge()
    assert "not fitted" in model._repr_html_() and "folds" in model._repr_html_()
    page = model.fit(X, y, t)._repr_html_()
    assert "fitted" in page and "penalties_" in page and "<table>" in page
