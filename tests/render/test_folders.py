"""Result folders are the complete old run or the complete new one, whatever interrupts
the new one: an exception at any file, a failed swap, SIGINT or SIGTERM at any moment, or
a kill that leaves hidden folders for the next run to repair."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import netscope.files.atomic as atomic
from netscope.cli import main
from netscope.errors import NetscopeError
from netscope.files.folders import MARKER, check_replaceable, staged_folder

RUN = ["multitask", "run", "--dataset", "survey", "--quiet",
       "--families", "pooled-ridge,mtl-ridge,pooled-mlp", "--pooled-epochs", "2"]


def state(folder):
    """The seed of the complete run in ``folder``; fails if the folder is a mixture."""
    doc = json.loads((folder / MARKER).read_text())
    on_disk = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                     if p.is_file() and p.name != MARKER)
    assert on_disk == doc["files"]
    results = json.loads((folder / "results.json").read_text())
    with open(folder / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == [s["model"] for s in results["summary"]]
    assert [float(r["mse"]) for r in rows] == [s["mse"] for s in results["summary"]]
    return results["settings"]["seed"]


def no_leftovers(parent):
    assert not [p.name for p in parent.iterdir() if p.name.startswith(".")]


@pytest.fixture
def old_run(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("NETSCOPE_DATA", str(data_root))
    out = tmp_path / "res"
    assert main([*RUN, "--seed", "1", "--out", str(out)]) == 0
    assert state(out) == 1
    return out


def test_rerun_replaces_whole(old_run):
    stale = old_run / "bland_altman_old-family.png"  # as if an older run had more families
    stale.write_bytes(b"old")
    doc = json.loads((old_run / MARKER).read_text())
    doc["files"] = sorted([*doc["files"], stale.name])
    (old_run / MARKER).write_text(json.dumps(doc))
    assert main([*RUN, "--seed", "2", "--out", str(old_run)]) == 0
    assert state(old_run) == 2 and not stale.exists()
    no_leftovers(old_run.parent)


def test_interrupt_at_every_file_keeps_the_old_run(old_run, monkeypatch, capsys):
    real = os.replace
    files = len(json.loads((old_run / MARKER).read_text())["files"])
    for k in range(1, files + 1):
        calls = []

        def replace(src, dst, k=k, calls=calls):
            calls.append(dst)
            if len(calls) == k:
                raise KeyboardInterrupt
            real(src, dst)

        monkeypatch.setattr(atomic.os, "replace", replace)
        assert main([*RUN, "--seed", "2", "--out", str(old_run)]) == 130
        monkeypatch.setattr(atomic.os, "replace", real)
        assert state(old_run) == 1, f"interrupted at file {k}"
        no_leftovers(old_run.parent)
    assert "netscope: interrupted" in capsys.readouterr().err


def test_failed_swap_keeps_the_old_run(old_run, monkeypatch, capsys):
    real = os.rename
    calls = []

    def rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the new folder onto the target, after the old one moved away
            raise OSError(28, "No space left on device", str(dst))
        real(src, dst)

    monkeypatch.setattr("netscope.files.folders.os.rename", rename)
    assert main([*RUN, "--seed", "2", "--out", str(old_run)]) == 2
    monkeypatch.setattr("netscope.files.folders.os.rename", real)
    assert "No space left on device" in capsys.readouterr().err
    assert state(old_run) == 1
    no_leftovers(old_run.parent)


def test_signals_at_any_moment(old_run, data_root):
    """Real SIGINT/SIGTERM at several moments of a second run, in a separate process."""
    env = {**os.environ, "NETSCOPE_DATA": str(data_root)}
    outcomes = []
    loud = [a for a in RUN if a != "--quiet"]
    for delay, sig in [(0.0, signal.SIGINT), (0.3, signal.SIGTERM), (0.6, signal.SIGINT),
                       (1.0, signal.SIGTERM)]:
        proc = subprocess.Popen([sys.executable, "-m", "netscope", *loud, "--seed", "2",
                                 "--out", str(old_run)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        for line in proc.stderr:  # started: the handlers are in place
            if "pooled ridge: training" in line:
                break
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, 130, 143) and "Traceback" not in err
        seed = state(old_run)  # complete, old or new, whenever the signal landed
        assert seed == 2 if proc.returncode == 0 else seed in (1, 2)
        outcomes.append(proc.returncode)
        no_leftovers(old_run.parent)
        if seed == 2:  # put the old run back for the next moment
            main([*RUN, "--seed", "1", "--out", str(old_run)])
    assert {130, 143} & set(outcomes)  # at least one signal landed mid-run


def test_a_killed_run_is_repaired(tmp_path):
    target = tmp_path / "res"
    dead = 2**22 + 12345  # above the default pid_max: no such process
    backup = tmp_path / f".res.previous-{dead}-abcd"
    backup.mkdir()
    (backup / MARKER).write_text("{}")
    partial = tmp_path / f".res.partial-{dead}-beef"
    partial.mkdir()
    (partial / "results.csv").write_text("half")
    check_replaceable(target)
    assert (target / MARKER).is_file() and not backup.exists() and not partial.exists()


def test_foreign_and_failed_runs(tmp_path):
    mine = tmp_path / "mine"
    with staged_folder(mine) as stage:
        (stage / "a.csv").write_text("1")
    assert json.loads((mine / MARKER).read_text())["files"] == ["a.csv"]
    with pytest.raises(RuntimeError), staged_folder(mine) as stage:
        (stage / "b.csv").write_text("2")
        raise RuntimeError("boom")
    assert sorted(p.name for p in mine.iterdir()) == ["a.csv", MARKER]
    no_leftovers(tmp_path)
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("keep me")
    with pytest.raises(NetscopeError, match="did not write"), staged_folder(tmp_path / "theirs"):
        pass
    assert (tmp_path / "theirs" / "notes.txt").read_text() == "keep me"


def test_replacing_another_commands_results_is_said(tmp_path):
    """A rerun of the same command replaces its folder quietly; another command's results
    (other images, other options) are never replaced without a word."""
    heard = []
    with staged_folder(tmp_path / "out", "netscope vision evaluate chelsea") as stage:
        (stage / "a.txt").write_text("1")
    with staged_folder(tmp_path / "out", "netscope vision evaluate chelsea", heard.append) \
            as stage:
        (stage / "a.txt").write_text("2")
    assert heard == []
    with staged_folder(tmp_path / "out", "netscope vision evaluate coffee", heard.append) \
            as stage:
        (stage / "a.txt").write_text("3")
    assert heard == [f"replaced {tmp_path / 'out'}, which held the results of: netscope "
                     f"vision evaluate chelsea"]
