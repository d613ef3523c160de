"""The command line end to end, on the survey with few epochs, and its error messages."""

import json

import numpy as np
import pandas as pd
import pytest

from netscope.cli import main
from netscope.multitask.families import FAMILIES, families_for

FAST = ["--per-task-epochs", "2", "--pooled-epochs", "2", "--gated-epochs", "2",
        "--stage-epochs", "1,1,1", "--quiet"]


def test_survey_standard_end_to_end(tmp_path, data_root, capsys):
    out = tmp_path / "res"
    rc = main(["multitask", "run", "--dataset", "survey", "--protocol", "standard",
               "--data-dir", str(data_root), "--out", str(out), "--save-models", *FAST])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| model" in text and "mean-regularized MTL ridge" in text
    assert "16 calibration profiles train" in text  # the protocol's definition is printed
    # what is true of this data set: its standard protocol is one fixed split
    assert "the survey's standard protocol is a single fixed split" in text
    assert "protocol repeats the comparison over several splits" not in text
    summary = pd.read_csv(out / "results.csv")
    assert len(summary) == len(families_for("regression"))
    assert set(summary.columns) >= {"mse_std", "mse", "explained_variance", "train_seconds"}
    doc = json.loads((out / "results.json").read_text())
    assert doc["protocol"] == "standard" and len(doc["runs"]) == len(families_for("regression"))
    per_task = pd.read_csv(out / "per_task.csv")
    assert len(per_task) == 190
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 8 and "Bland-Altman" in html
    assert (out / "bland_altman_task-gated.png").read_bytes()[:4] == b"\x89PNG"
    for picture in ("task_correlations_mtrl.png", "task_map_mtrl.png", "task_map_gated.png"):
        assert (out / picture).read_bytes()[:4] == b"\x89PNG"  # how the models relate tasks
    assert "learned task correlations" in html
    # what each fit chose is on the page, in the text and in the JSON, from the fitted models
    notes = {n["model"]: n["note"] for n in doc["fit_notes"]}
    mixed = notes["mixed-effects model"]
    assert mixed.startswith("14 random effects per task") and "factor1" in mixed
    ensemble = notes["ensemble (MTL ridge + mixed + trees)"]
    assert ensemble.startswith("weights mtl-ridge") and "10-fold cross-fitting" in ensemble
    assert "What the fits chose" in html and "what the fits chose" in text
    assert (out / "models" / "mtl-ridge" / "state.pt").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_user_csv(tmp_path, capsys):
    rows = [{"shop": s, "size": i % 5, "kind": "ab"[i % 2], "sales": i * (1 + (s == "x"))}
            for s in ("x", "y", "z") for i in range(10)]
    pd.DataFrame(rows).to_csv(tmp_path / "shops.csv", index=False)
    rc = main(["multitask", "run", "--csv", str(tmp_path / "shops.csv"), "--task-column", "shop",
               "--target-column", "sales", "--families", "pooled-ridge,mtl-ridge",
               "--out", str(tmp_path / "o"), *FAST])
    assert rc == 0
    assert "shops.csv (30 rows, 3 tasks" in capsys.readouterr().out


def test_a_users_survey_csv_is_not_the_built_in_survey(tmp_path, capsys, monkeypatch):
    """A user's file named survey.csv gets its own default folder (never the built-in
    survey's), the general settings (not the survey's epochs and weight decay), and
    results.json names the file and says it is not a built-in data set."""
    rows = [{"who": s, "a": i % 4, "b": (i * 7) % 5, "y": i + (s == "p")}
            for s in ("p", "q", "r") for i in range(12)]
    pd.DataFrame(rows).to_csv(tmp_path / "survey.csv", index=False)
    monkeypatch.chdir(tmp_path)
    rc = main(["multitask", "run", "--csv", "survey.csv", "--task-column", "who",
               "--target-column", "y", "--families", "pooled-ridge", *FAST])
    assert rc == 0
    out = tmp_path / "netscope-results" / "survey-csv-lecture"
    assert out.is_dir() and not (tmp_path / "netscope-results" / "survey-lecture").exists()
    doc = json.loads((out / "results.json").read_text())
    assert doc["dataset"] == "survey.csv" and doc["built_in"] is None
    assert doc["settings"]["weight_decay"] == 0.0 and "survey.csv (36 rows" in \
        capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--csv", "missing.csv", "--task-column", "a", "--target-column", "b"], "file not found"),
    (["--csv", "x.csv"], "--csv needs --task-column and --target-column"),
    (["--families", "ridge,forest"], "unknown model family 'ridge'"),
])
def test_errors_are_one_clear_line(tmp_path, data_root, capsys, argv, message):
    rc = main(["multitask", "run", "--dataset", "survey", "--data-dir", str(data_root),
               "--out", str(tmp_path), "--quiet", *argv])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("netscope: error:") and message in err
    assert "Traceback" not in err


def test_missing_data_dir(tmp_path, capsys):
    rc = main(["multitask", "run", "--data-dir", str(tmp_path / "nowhere")])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_answer_comes_first_and_is_paired_over_splits(data_root, tmp_path):
    from netscope.data import load_school
    from netscope.multitask import protocols
    from netscope.multitask.comparison.results import compare
    from netscope.render.comparison import answer_text

    data = load_school(data_root)
    comp = compare(data, protocols.standard(data, data_root, n_splits=3),
                   families=["pooled-ridge", "mtl-ridge", "ridge-per-task"])
    a = comp.answer()
    mse = {r.family.key: [x["mse"] for x in r.runs] for r in comp.results}
    diff = np.array(mse[a["runner_up_key"]]) - np.array(mse[a["best_key"]])
    assert a["best_key"] == "mtl-ridge" and a["splits"] == 3
    assert a["difference"] == pytest.approx(diff.mean())
    assert a["difference_sd"] == pytest.approx(diff.std(ddof=1))
    assert a["wins"] == int((diff > 0).sum()) and 0 <= a["p"] <= 1
    text = answer_text(comp)
    assert text.startswith("Use mean-regularized MTL ridge") and "Paired over 3 splits" in text
    page = comp._repr_html_()
    assert page.index("Use mean-regularized MTL ridge") < page.index("<table>")
    single = compare(data, protocols.lecture(data), families=["pooled-ridge", "mtl-ridge"])
    assert "One split only" in answer_text(single)


def _grouped_csv(path, rows: dict[str, int], constant: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    parts = []
    for task, n in rows.items():
        X = rng.normal(size=(n, 3))
        y = np.full(n, 3.0) if constant else X @ [1.0, 2.0, 3.0] + rng.normal(size=n)
        parts.append(pd.DataFrame({"task": task, "x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2],
                                   "y": y}))
    pd.concat(parts).to_csv(path, index=False)
    return str(path)


SMALL_RUN = ["--task-column", "task", "--target-column", "y", "--quiet", "--families",
             "ridge-per-task,pooled-ridge,mtl-ridge,learned-task-covariance,task-gated",
             "--gated-epochs", "2"]


def test_awkward_but_valid_tables_run(tmp_path, capsys):
    """A task with two rows (a singular per-task system) and a table with one task (no
    task map can be drawn) run to the end; the one-task run says why it has no map."""
    few = _grouped_csv(tmp_path / "few.csv", {"a": 40, "b": 40, "c": 2})
    assert main(["multitask", "run", "--csv", few, *SMALL_RUN, "--out",
                 str(tmp_path / "few")]) == 0
    one = _grouped_csv(tmp_path / "one.csv", {"a": 60})
    assert main(["multitask", "run", "--csv", one, *SMALL_RUN, "--out",
                 str(tmp_path / "one")]) == 0
    out = capsys.readouterr().out
    assert "1 task(s) only: the task maps are left out" in out
    assert (tmp_path / "one" / "report.html").is_file()
    assert not list((tmp_path / "one").glob("task_map*.png"))


def test_a_constant_target_is_one_clear_line(tmp_path, capsys):
    flat = _grouped_csv(tmp_path / "flat.csv", {"a": 30, "b": 30}, constant=True)
    assert main(["multitask", "run", "--csv", flat, *SMALL_RUN, "--out",
                 str(tmp_path / "flat")]) == 2
    assert "the target column 'y' is constant (every value 3.0): there is nothing to " \
           "predict." in capsys.readouterr().err


def test_a_column_named_twice_is_refused(tmp_path, capsys):
    path = tmp_path / "twice.csv"
    path.write_text("task,x1,y,y\na,1,2,3\na,2,3,4\nb,3,4,5\nb,4,5,6\n")
    assert main(["multitask", "run", "--csv", str(path), "--task-column", "task",
                 "--target-column", "y", "--quiet", "--out", str(tmp_path / "o")]) == 2
    assert "the header names 'y' more than once" in capsys.readouterr().err


def test_every_option_of_every_command_shows_its_default_and_choices():
    """--help of each command: an option with a default says it (in its text or the
    formatter's "(default: ...)"), one with choices lists them, and --families names every
    family key."""
    import argparse

    from netscope.cli import _leaves, build_parser

    parser = build_parser()
    for leaf in _leaves(parser):
        formatter = leaf._get_formatter()
        for action in leaf._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS or isinstance(
                    action, argparse._HelpAction | argparse._StoreTrueAction):
                continue
            shown = formatter._get_help_string(action)
            if action.default not in (None, False):
                assert "default" in shown.lower(), (leaf.prog, action.option_strings)
            if action.choices:
                assert "{" + ",".join(map(str, action.choices)) + "}" in \
                    formatter._format_action_invocation(action), (leaf.prog, action.dest)
    run = next(p for p in _leaves(parser) if p.prog.endswith("multitask run"))
    families = next(a for a in run._actions if a.dest == "families")
    assert all(key in families.help for key in FAMILIES)
