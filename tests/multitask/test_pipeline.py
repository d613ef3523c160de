"""Saved models predict from a table's rows as they come: the preprocessing saved beside a
model (text levels, gaps, scaling, task names) gives back exactly the comparison's
predictions, and `netscope multitask predict` writes them."""

import numpy as np
import pandas as pd
import pytest

from netscope.cli import main
from netscope.data import load_table
from netscope.multitask import compare, protocols
from netscope.multitask.families import FAMILIES
from netscope.multitask.pipeline import Preprocessing, predict_table
from netscope.multitask.protocols import prepare


def table(kind: str, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 240
    shop = rng.choice(["north", "south", "east"], n)
    x = rng.normal(size=(n, 2))
    task = np.repeat([f"s{k}" for k in range(6)], n // 6)
    eta = x[:, 0] - 0.5 * x[:, 1] + (shop == "north") + rng.normal(0, 0.8, 6)[
        np.repeat(np.arange(6), n // 6)]
    df = pd.DataFrame({"a": x[:, 0] * 10 + 50, "b": x[:, 1], "shop": shop, "task": task})
    df.loc[rng.uniform(size=n) < 0.1, "b"] = np.nan
    df.loc[rng.uniform(size=n) < 0.05, "shop"] = np.nan
    if kind == "regression":
        df["y"] = 3 * eta + 20 + rng.normal(0, 1, n)
    else:
        df["y"] = np.array(["lo", "mid", "hi"])[np.digitize(eta + rng.normal(0, 1, n),
                                                            [-0.5, 0.8])]
    return df


@pytest.mark.parametrize("kind, keys", [("regression", ["pooled-ridge", "boosted-trees"]),
                                        ("multiclass", ["ridge-per-task", "ensemble"])])
def test_saved_models_give_the_comparisons_predictions_from_table_rows(tmp_path, kind, keys):
    df = table(kind)
    df.to_csv(tmp_path / "t.csv", index=False)
    data = load_table(tmp_path / "t.csv", "task", "y")
    proto = protocols.lecture(data)
    comp = compare(data, proto, families=keys)
    prep = prepare(data, proto.splits[0], proto.scale_from)
    test = proto.splits[0].test
    for res in comp.results:
        folder = res.model.save(tmp_path / res.family.key)
        Preprocessing.of(data, prep, FAMILIES[res.family.key].native_missing).write(folder)
        rows = pd.read_csv(tmp_path / "t.csv").iloc[test].drop(columns="y")
        out, notes = predict_table(folder, rows)
        assert notes == []
        if kind == "regression":
            np.testing.assert_allclose(out["predicted_y"], res.y_pred, rtol=1e-10)
        else:
            P = out[[f"p_{c}" for c in data.classes]].to_numpy()
            np.testing.assert_allclose(P, res.y_pred, atol=1e-12)
            assert list(out["predicted_y"]) == [data.classes[k] for k in P.argmax(1)]


def test_predict_command_and_its_errors(tmp_path, capsys):
    df = table("multiclass")
    df.to_csv(tmp_path / "t.csv", index=False)
    assert main(["multitask", "run", "--csv", str(tmp_path / "t.csv"), "--task-column", "task",
                 "--target-column", "y", "--families", "pooled-ridge", "--quiet",
                 "--save-models", "--out", str(tmp_path / "run")]) == 0
    new = df.head(5).drop(columns="y").assign(task=["s0", "new", "s1", "s2", "s3"])
    new.loc[2, "shop"] = "west"
    new.to_csv(tmp_path / "new.csv", index=False)
    model = str(tmp_path / "run" / "models" / "pooled-ridge")
    capsys.readouterr()
    assert main(["multitask", "predict", model, "--csv", str(tmp_path / "new.csv"), "--out",
                 str(tmp_path / "p.csv")]) == 0
    said = capsys.readouterr().out
    assert "1 row(s) of 1 task(s) not in the training rows" in said
    assert "level(s) of 'shop' not seen in training (e.g. 'west')" in said
    out = pd.read_csv(tmp_path / "p.csv")
    assert list(out.columns[-4:]) == ["p_hi", "p_lo", "p_mid", "predicted_y"]
    np.testing.assert_allclose(out[["p_hi", "p_lo", "p_mid"]].sum(axis=1), 1.0)
    new.drop(columns="shop").to_csv(tmp_path / "bad.csv", index=False)
    assert main(["multitask", "predict", model, "--csv", str(tmp_path / "bad.csv"), "--out",
                 str(tmp_path / "q.csv")]) == 2
    assert "no column 'shop', which the model was trained on" in capsys.readouterr().err
    assert not (tmp_path / "q.csv").exists()
    (tmp_path / "run" / "models" / "pooled-ridge" / "preprocessing.json").unlink()
    assert main(["multitask", "predict", model, "--csv", str(tmp_path / "new.csv"), "--out",
                 str(tmp_path / "q.csv")]) == 2
    assert "no preprocessing.json beside the model" in capsys.readouterr().err
