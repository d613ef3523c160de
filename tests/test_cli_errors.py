"""Every bad input found by the hostile/careless-user sweep, replayed through the command
line: exit code 2 and one line on stderr that names the problem, never a traceback. Cases
that must fail before any model or data is loaded run in well under a second each."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from netscope.cli import main

SURVEY = ["multitask", "run", "--dataset", "survey", "--quiet", "--families", "pooled-ridge"]
KINDS = ["multitask", "run", "--csv", "{kinds}", "--task-column", "shop", "--quiet", "--out",
         "{tmp}/k"]
CSV = ["multitask", "run", "--csv", "{shops}", "--task-column", "shop", "--target-column", "y",
       "--quiet", "--out", "{tmp}/o"]


@pytest.fixture
def places(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.docx").write_text("precious")
    shops = pd.DataFrame({"shop": list("abc") * 10, "x": range(30), "k": list("pq") * 15,
                          "y": [i % 7 for i in range(30)]})
    shops.to_csv(tmp_path / "shops.csv", index=False)
    shops.assign(x=1.0, k="p").to_csv(tmp_path / "flat.csv", index=False)
    kinds = shops.assign(label=["yes", "no", "no"] * 10, one=["yes"] * 30, tri=list("rgb") * 10,
                         many=[f"c{i}" for i in range(30)], neg=[i - 3 for i in range(30)],
                         half=[i / 2 for i in range(30)], gone=float("nan"),
                         gaps=["a", None, "b"] * 10)
    kinds.to_csv(tmp_path / "kinds.csv", index=False)
    many = pd.DataFrame({"shop": list("abc") * 70, "x": range(210),
                         "y": [f"level{i}" for i in range(210)]})
    many.to_csv(tmp_path / "many.csv", index=False)
    return {"kinds": str(tmp_path / "kinds.csv"), "many": str(tmp_path / "many.csv"),
            "file": str(afile), "under": str(afile / "sub"), "foreign": str(foreign),
            "tmp": str(tmp_path), "shops": str(tmp_path / "shops.csv"),
            "flat": str(tmp_path / "flat.csv")}


CASES = [
    # output places
    (SURVEY + ["--out", "{file}"], "is a file, not a folder"),
    (SURVEY + ["--out", "{under}"], "is a file, so no folder can be made"),
    (SURVEY + ["--out", "/proc/netscope-out"], "cannot write in /proc"),
    (SURVEY + ["--out", "{foreign}"], "holds files netscope did not write (e.g. 'chapter1.docx')"),
    (["vision", "gradcam", "chelsea", "--out", "{file}"], "is a file, not a folder"),
    (["vision", "report", "chelsea", "--out", "{foreign}"], "did not write"),
    (["live", "--source", "pattern", "--no-display", "--record", "{under}/x.mp4"],
     "is a file, so no folder can be made"),
    (["live", "--source", "pattern", "--no-display", "--record", "{tmp}"], "this is a folder"),
    # numbers out of range, at parse time, with the range
    (SURVEY + ["--batch-size", "0"], "--batch-size: expected a whole number from 1"),
    (SURVEY + ["--batch-size", "-3"], "--batch-size: expected a whole number from 1"),
    (SURVEY + ["--seed", "-1"], "--seed: expected a whole number from 0 to 4294967295"),
    (SURVEY + ["--splits", "-1"], "--splits: expected a whole number >= 1"),
    (SURVEY + ["--splits", "0"], "--splits: expected a whole number >= 1"),
    (SURVEY + ["--pooled-epochs", "-5"], "--pooled-epochs: expected a whole number from 1"),
    (SURVEY + ["--per-task-epochs", "0"], "--per-task-epochs: expected a whole number from 1"),
    (SURVEY + ["--per-task-hidden", "0"], "--per-task-hidden: expected comma-separated values"),
    (SURVEY + ["--per-task-hidden", "30,x"], "--per-task-hidden: expected comma-separated"),
    (SURVEY + ["--stage-epochs", "1,2"], "--stage-epochs: expected 3 comma-separated values"),
    (SURVEY + ["--lr", "nan"], "--lr: expected a number > 0"),
    (SURVEY + ["--lr", "0"], "--lr: expected a number > 0"),
    (SURVEY + ["--test-fraction", "1.5"], "--test-fraction: expected a number > 0 and < 1"),
    (SURVEY + ["--threads", "0"], "--threads: expected a whole number from 1"),
    (["vision", "predict", "chelsea", "--top", "-3"], "--top: expected a whole number from 1"),
    (["vision", "report", "chelsea", "--top", "0"], "--top: expected a whole number from 1"),
    (["vision", "layers", "--size", "1"], "--size: expected a whole number from 8 to 4096"),
    (["vision", "classes", "flamingo", "--size", "100000"], "--size: expected a whole number"),
    (["vision", "filters", "--layer", "_blocks.2", "--lr", "nan"], "--lr: expected a number > 0"),
    (["vision", "saliency", "chelsea", "--smooth", "-5"], "--smooth: expected a whole number"),
    (["vision", "gradcam", "chelsea", "--batch-size", "0"], "--batch-size: expected a whole"),
    (["vision", "filters", "--layer", "_blocks.2", "--rotate", "500"], "--rotate: expected"),
    (["live", "--port", "70000"], "--port: expected a whole number from 0 to 65535"),
    (["live", "--port", "-1"], "--port: expected a whole number from 0 to 65535"),
    (["live", "--frames", "0"], "--frames: expected a whole number from 1"),
    # nonsense that used to run forever, or needs the data to say no
    (["live", "--source", "pattern", "--no-display"], "would run forever and produce nothing"),
    (["live", "--source", "0", "--no-display"], "would run forever and produce nothing"),
    (["multitask", "run", "--dataset", "school", "--protocol", "standard", "--splits", "11",
      "--quiet", "--families", "pooled-ridge", "--out", "{tmp}/s"], "10 published splits"),
    (SURVEY + ["--protocol", "standard", "--splits", "3"], "the survey has one standard split"),
    # a user's table
    (CSV + ["--features", "y,x"], "column 'y' is the target column and cannot also be a"),
    (CSV + ["--features", "shop"], "column 'shop' is the task column"),
    (CSV + ["--features", "x,,k"], "--features 'x,,k' has an empty name"),
    (CSV + ["--families", ","], "--families ',' has an empty name"),
    (CSV + ["--per-task-hidden", "100000,100000"], "--per-task-hidden: expected"),
    (["multitask", "run", "--csv", "{flat}", "--task-column", "shop", "--target-column", "y",
      "--quiet", "--out", "{tmp}/o"], "no feature varies on the training rows"),
    (["data", "check", "--data-dir", "{file}"], "is a file, not a folder"),
    # target kinds, missing values and new tasks
    (KINDS + ["--target-column", "one", "--features", "x"], "the target column 'one' is "
                                                            "constant (every value yes)"),
    (KINDS + ["--target-column", "label", "--features", "x", "--target-kind", "regression"],
     "--target-kind regression needs numbers, but 'label' holds"),
    (KINDS + ["--target-column", "neg", "--features", "x", "--target-kind", "count"],
     "--target-kind count needs whole numbers >= 0, but row 1 (line 2 of the file) holds -3"),
    (KINDS + ["--target-column", "half", "--features", "x", "--target-kind", "count"],
     "holds 0.5"),
    (KINDS + ["--target-column", "x", "--features", "gone"], "feature column 'gone' is "
                                                             "missing on every row"),
    (KINDS + ["--target-column", "y", "--features", "gone,x", "--missing", "error"],
     "column 'gone' has a missing value at row 1"),
    (KINDS + ["--target-column", "y", "--features", "x", "--protocol", "new-tasks"],
     "deals the tasks into 5 folds, but kinds.csv has 3 task(s)"),
    (KINDS + ["--target-column", "y", "--features", "x", "--new-task-fraction", "0.5"],
     "--new-task-fraction goes with --protocol standard"),
    (["multitask", "run", "--csv", "{many}", "--task-column", "shop", "--target-column", "y",
      "--quiet", "--out", "{tmp}/m"], "holds text with 210 distinct values, too many for "
                                      "classes (at most 100)"),
    (SURVEY + ["--target-kind", "binary"], "--target-kind goes with --csv"),
    (SURVEY + ["--backend", "dask"], "--backend dask and --scheduler ADDRESS go together"),
    (KINDS + ["--target-column", "y", "--task-column", "gaps", "--features", "x"],
     "task column 'gaps' is empty at row 2"),
    # models and layers
    (["vision", "predict", "chelsea", "--model", "json:loads"], "json:loads() raised TypeError"),
    (["vision", "activations", "chelsea", "--layers", "_fc", "--out", "{tmp}/a"],
     "layer _fc has no feature maps"),
    # inputs checked before the model loads
    (["vision", "evaluate", "chelsea", "--methods", "gradcam,gradcamm"],
     "unknown method 'gradcamm'"),
    (["vision", "evaluate", "chelsea", "--steps", "1"], "--steps: expected a whole number from 2"),
    (["vision", "evaluate", "chelsea", "--metrics", "deletion,aopc"], "unknown metric 'aopc'"),
    (["vision", "predict", "nothere.jpg"], "nothere.jpg: file not found"),
    (["vision", "gradcam", "chelsea", "--class", "flamingoo"], "Did you mean: 'flamingo'"),
    (["vision", "classes", "tabby", "flamngo"], "Did you mean: 'flamingo'"),
]


def run_cli(argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse
        rc = exc.code
    return rc, capsys.readouterr().err


def one_clear_line(err: str, message: str) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert message in lines[0], lines[0]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(c[0][:4]) + f" #{i}"
                                                      for i, c in enumerate(CASES)])
def test_bad_input_is_one_line_exit_2(argv, message, places, data_root, capsys, monkeypatch):
    monkeypatch.setenv("NETSCOPE_DATA", str(data_root))
    argv = [a.format(**places) for a in argv]
    start = time.perf_counter()
    rc, err = run_cli(argv, capsys)
    assert rc == 2
    one_clear_line(err, message)
    if argv[0] == "vision" and "report" not in argv:
        assert time.perf_counter() - start < 30  # generous; the point is no model load
    assert (os.listdir(places["foreign"]) == ["chapter1.docx"])  # nothing touched


def test_nothing_written_when_refused(places, data_root, capsys, monkeypatch):
    """--splits -1 used to leave a partial results folder behind."""
    monkeypatch.setenv("NETSCOPE_DATA", str(data_root))
    out = os.path.join(places["tmp"], "never")
    rc, _ = run_cli(SURVEY + ["--splits", "-1", "--out", out], capsys)
    assert rc == 2 and not os.path.exists(out)


def test_threads_from_the_environment(capsys, monkeypatch):
    monkeypatch.setenv("NETSCOPE_THREADS", "two")
    rc, err = run_cli(["vision", "predict", "chelsea"], capsys)
    assert rc == 2
    one_clear_line(err, "NETSCOPE_THREADS must be a whole number >= 1, got 'two'")


def test_ascent_that_would_not_fit_in_memory_is_refused(capsys):
    classes = ["flamingo", "goldfish", "volcano", "tabby", "tiger cat"] * 5
    rc, err = run_cli(["vision", "classes", *classes, "--size", "4096", "--steps", "1"], capsys)
    assert rc == 2
    one_clear_line(err, "25 picture(s) of 4096x4096 pixels need about")
    assert "GiB is available; use a size of about" in err


def test_data_that_overflows_float32_is_refused(tmp_path, capsys):
    rows = pd.DataFrame({"shop": list("aabbcc") * 5, "x": [1e300, -2e300, 3e300] * 10,
                         "z": range(30), "y": range(30)})
    rows.to_csv(tmp_path / "big.csv", index=False)
    rc, err = run_cli(["multitask", "run", "--csv", str(tmp_path / "big.csv"), "--task-column",
                       "shop", "--target-column", "y", "--quiet", "--out",
                       str(tmp_path / "o")], capsys)
    assert rc == 2
    one_clear_line(err, "feature 'x' cannot be scaled into float32 (values up to 3e+300)")
    rows["x"], rows["y"] = rows["z"], [1e300] * 29 + [2e300]
    rows.to_csv(tmp_path / "big.csv", index=False)
    rc, err = run_cli(["multitask", "run", "--csv", str(tmp_path / "big.csv"), "--task-column",
                       "shop", "--target-column", "y", "--quiet", "--out",
                       str(tmp_path / "o")], capsys)
    assert rc == 2
    one_clear_line(err, "target 'y' cannot be scaled into float32")


def test_corrupt_parquet(tmp_path, capsys):
    bad = tmp_path / "broken.parquet"
    pd.DataFrame({"t": ["a", "b"] * 5, "x": range(10), "y": range(10)}).to_parquet(bad)
    bad.write_bytes(bad.read_bytes()[:-40])  # cut the footer off
    rc, err = run_cli(["multitask", "run", "--csv", str(bad), "--task-column", "t",
                       "--target-column", "y", "--quiet", "--out", str(tmp_path / "o")], capsys)
    assert rc == 2
    one_clear_line(err, "broken.parquet: cannot read as Parquet")


def test_long_class_list_gives_a_short_file_name(tmp_path, capsys):
    classes = ["flamingo", "goldfish", "volcano", "tabby", "tiger cat", "Egyptian cat",
               "golden retriever", "coffee mug", "espresso", "space shuttle"] * 3
    rc, err = run_cli(["vision", "classes", *classes, "--size", "32", "--steps", "1",
                       "--quiet", "--out", str(tmp_path)], capsys)
    assert rc == 0, err
    names = [p.name for p in tmp_path.iterdir()]
    assert len(names) == len(set(classes)) + 2 and max(len(n) for n in names) <= 170


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGTERM, 143, "terminated")])
def test_interrupt_is_one_line(tmp_path, data_root, sig, code, word):
    """Ctrl-C (or a SIGTERM from a job scheduler) during a long run: no traceback."""
    env = {**os.environ, "NETSCOPE_DATA": str(data_root), "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "netscope", "multitask", "run", "--dataset", "survey",
         "--families", "per-task-mlp", "--per-task-epochs", "100000", "--out",
         str(tmp_path / "o")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    _wait_for_line(proc, "per-task MLP: training")
    err = _signal_once(proc, sig)
    assert proc.returncode == code
    assert "Traceback" not in err and err.strip().splitlines()[-1] == f"netscope: {word}"
    assert not (tmp_path / "o").exists() and os.listdir(tmp_path) == []


def _signal_once(proc, sig, seconds: float = 60) -> str:
    """Send ``sig`` once, as a user presses Ctrl-C once, and wait for the exit. A process
    that ignores it fails the test with every thread's stack (PYTHONFAULTHANDLER dumps them
    on SIGABRT), so a lost first signal shows where it was lost instead of being hidden by
    a second one."""
    proc.send_signal(sig)
    try:
        return proc.communicate(timeout=seconds)[1]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        stacks = proc.communicate(timeout=30)[1]
        raise AssertionError(f"the process ignored one {sig!r}; its threads:\n{stacks}") \
            from None


def _wait_for_line(proc, text: str, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    for line in proc.stderr:
        if text in line:
            return
        assert time.time() < deadline, f"no {text!r} on stderr"
    raise AssertionError(f"process ended before {text!r}")


def test_diverged_training_is_reported(places, capsys):
    rc = main(["multitask", "run", "--csv", places["shops"], "--task-column", "shop",
               "--target-column", "y", "--families", "pooled-ridge,pooled-mlp", "--lr", "10",
               "--pooled-epochs", "30", "--quiet", "--out", places["tmp"] + "/d"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "warning: pooled MLP: test MSE is" in out and "training probably diverged" in out
    assert "warning: pooled ridge" not in out


def test_help_shows_defaults_and_exact_ranges(capsys):
    with pytest.raises(SystemExit):
        main(["multitask", "run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: lecture)" in text and "(a number > 0 and < 1)" in text
    assert "from 0 to 4294967295" in text and "e+09" not in text
    with pytest.raises(SystemExit):
        main(["vision", "gradcam", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(a whole number from 1 to 4096) (default: 16)" in text
    assert "(default: 0; scorecam, sscam, iscam, ablationcam)" in text  # a zero default too
    rc, err = run_cli(["multitask", "run", "--test-fraction", "1"], capsys)
    assert rc == 2 and "--test-fraction: expected a number > 0 and < 1, got '1'" in err


CHECK_FIRST = """
import sys
from netscope.cli import main
rc = main(sys.argv[1:])
print(rc, 'torch' in sys.modules, 'scipy' in sys.modules)
"""


@pytest.mark.parametrize("argv", [
    ["vision", "gradcam", "/nonexistent.jpg"],
    ["vision", "saliency", "/nonexistent.jpg"],
    ["vision", "report", "/nonexistent.jpg"],
    ["vision", "activations", "/nonexistent.jpg"],
    ["vision", "concepts", "/nonexistent.jpg"],
    ["vision", "evaluate", "/nonexistent.jpg"],
    ["vision", "evaluate", "chelsea", "--methods", "nope"],
    ["vision", "evaluate", "chelsea", "--metrics", "nope"],
    ["vision", "explain", "/nonexistent"],
    ["vision", "atlas", "/nonexistent", "--layers", "x"],
    ["live", "--source", "/nonexistent.mp4"],
    ["multitask", "run", "--csv", "/nonexistent.csv", "--task-column", "a",
     "--target-column", "b"],
])
def test_argument_errors_come_before_pytorch_loads(argv):
    """Check first, import after: a typo costs no PyTorch (or SciPy) import, which takes
    seconds (measured: 0.1-0.3 s per error instead of 2-7 s)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", CHECK_FIRST, *argv], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "False", "False"], done.stdout + done.stderr
    assert done.stderr.startswith("netscope") and "Traceback" not in done.stderr


def test_a_long_step_is_never_silent():
    """The heartbeat repeats the last message while a step runs past its interval, says
    nothing for a fast step, and stops with the step."""
    import time

    from netscope.cli.common import Heartbeat

    heard = []
    with Heartbeat(heard.append, every=0.05, first="Ablation-CAM on 1 image(s)"):
        time.sleep(0.18)
    assert heard and heard[0].startswith("Ablation-CAM on 1 image(s) (still working")
    n = len(heard)
    time.sleep(0.12)
    assert len(heard) == n  # stopped with the step
    quick = []
    with Heartbeat(quick.append, every=5.0) as beat:
        beat("explaining chelsea")
    assert quick == ["explaining chelsea"]


def test_an_error_is_always_one_line(capsys):
    """A library's message with line breaks, or a page of text, still reaches the user as
    one line (cut with its length said)."""
    from netscope.cli import MESSAGE_MOST, _fail

    assert _fail("cannot parse:\n  line 1\n\n  line 2", 2) == 2
    assert capsys.readouterr().err == "netscope: error: cannot parse: line 1 line 2\n"
    _fail("x" * 50_000, 2)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < MESSAGE_MOST + 100 and "50,000 characters" in err


@pytest.mark.parametrize("argv", [
    ["vision", "gradcam", "chelsea", "--class", "tabbyy"],
    ["vision", "saliency", "chelsea", "--class", "tabbyy"],
])
def test_a_misspelt_class_fails_before_pytorch_loads(argv, tmp_path):
    """The README promises class names are checked before PyTorch loads (it took 11 s on a
    busy machine to say "did you mean"): a fresh process never imports torch."""
    import subprocess
    import sys

    code = ("import sys\nfrom netscope.cli import main\n"
            f"rc = main({argv + ['--out', str(tmp_path / 'o')]!r})\n"
            "print(rc, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split() == ["2", "False"], done.stdout + done.stderr
    assert "Did you mean: 'tabby'" in done.stderr
