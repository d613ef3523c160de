"""The family registry: every setting reaches the command line once, with its default and
range; ``Settings`` checks each by its declaration; a new family is one entry."""

import argparse

import numpy as np
import pytest

from netscope.errors import NetscopeError
from netscope.multitask.families import (
    FAMILIES,
    FOLDS,
    Family,
    Setting,
    all_settings,
    check_families,
)
from netscope.multitask.settings import Settings


def test_every_setting_is_a_flag_with_its_default():
    from netscope.cli.multitask import setting_flags

    parser = argparse.ArgumentParser()
    setting_flags(parser)
    flags = {a.option_strings[0]: a for a in parser._actions if a.option_strings}
    for s in all_settings():
        assert s.flag in flags, s.name
        assert "default" in flags[s.flag].help
        if s.choices:
            assert list(flags[s.flag].choices) == list(s.choices)
    defaults = Settings()
    for s in all_settings():
        assert getattr(defaults, s.name) == s.default


def test_settings_are_checked_by_their_declaration():
    with pytest.raises(NetscopeError, match="batch_size must be a whole number >= 1"):
        Settings(batch_size=0)
    with pytest.raises(NetscopeError, match=r"stage_lr\[1\] must be a number > 0"):
        Settings(stage_lr=(1e-3, 0.0, 1e-5))
    with pytest.raises(NetscopeError, match="stage_epochs needs 3 values"):
        Settings(stage_epochs=(1, 2))
    with pytest.raises(NetscopeError, match="mixed_cov must be one of full"):
        Settings(mixed_cov="banded")
    with pytest.raises(NetscopeError, match="lr must be a number"):
        Settings(lr=float("nan"))
    assert Settings(per_task_hidden=[4, 2]).per_task_hidden == (4, 2)  # lists become tuples
    survey = Settings.for_dataset("survey", lr=None, seed=3)
    assert survey.per_task_epochs == 100 and survey.seed == 3 and survey.lr == 1e-3


def test_a_new_family_is_one_entry(monkeypatch, tmp_path):
    """Declared once, a family is fit by compare, listed with its settings in results.json."""
    from netscope.data.tasks import TaskData
    from netscope.multitask import protocols
    from netscope.multitask.comparison import compare

    fam = Family("ridge-again", "ridge again", "ridge per task under another key",
                 "netscope.multitask.linear.ridge:RidgePerTask",
                 (FOLDS,), lambda s: {"folds": s.ridge_folds})
    monkeypatch.setitem(FAMILIES, fam.key, fam)
    rng = np.random.default_rng(0)
    X, t = rng.normal(size=(60, 2)), np.repeat(np.arange(3), 20)
    data = TaskData(X=X, y=X[:, 0] + t, task=t, task_names=["a", "b", "c"],
                    feature_names=["u", "v"])
    comp = compare(data, protocols.lecture(data), Settings(),
                   families=["ridge-per-task", "ridge-again"])
    a, b = comp.summary()
    with pytest.raises(AssertionError, match="declared twice"):  # one declaration per name
        monkeypatch.setitem(FAMILIES, "x", Family("x", "x", "x", fam.estimator,
                                                  (Setting("ridge_folds", 4, ""),)))
        all_settings()
    assert b["model"] == "ridge again" and a["mse"] == pytest.approx(b["mse"])


def test_unknown_empty_and_wrong_kind_families_are_refused():
    with pytest.raises(NetscopeError, match="unknown model family 'nope'"):
        check_families(["nope"])
    with pytest.raises(NetscopeError, match="no model family chosen"):
        check_families([])
    wrong = next((k for k, f in FAMILIES.items() if "count" not in f.kinds), None)
    if wrong:
        with pytest.raises(NetscopeError, match="does not take count targets"):
            check_families([wrong], kind="count")


@pytest.mark.parametrize("rows", [1, 2, 3])
def test_every_family_on_tasks_of_one_two_and_three_rows(rows):
    """Tiny tasks never raise a linear-algebra traceback: every family fits with finite
    predictions, or (one row per task) says clearly that it needs tasks of 2 training rows
    for its inner validation share (trees, mixed boosting, the ensemble)."""
    import numpy as np

    from netscope.errors import NetscopeError
    from netscope.multitask.families import FAMILIES
    from netscope.multitask.settings import Settings

    rng = np.random.default_rng(rows)
    X = rng.normal(size=(40 * rows, 3))
    t = np.repeat(np.arange(40), rows)
    y = X[:, 0] + rng.normal(0, 1, 40)[t] + 0.3 * rng.normal(size=40 * rows)
    settings = Settings(training="fixed")
    done = {}
    for key, family in FAMILIES.items():
        fitted = {k: done[k] for k in family.reuses if k in done}
        try:
            model = family.build(settings).fit(X, y, t, fitted=fitted)
        except NetscopeError as exc:
            assert rows == 1 and "2 training rows" in str(exc), (key, exc)
            continue
        done[key] = model
        assert np.isfinite(model.predict(X, t)).all(), key
