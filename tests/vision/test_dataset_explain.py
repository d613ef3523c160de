"""Whole datasets: every image of a folder tree explained in batches by DataLoader workers,
one table and .npz map shards, resumable, bad files reported, two torchrun ranks merged."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import netscope.vision.datasets.store as store_mod
from netscope import vision as A
from netscope.cli import main
from netscope.errors import NetscopeError
from netscope.vision.datasets.explain_run import DatasetSettings, explain_folder
from netscope.vision.datasets.image_files import dataset_files
from netscope.vision.datasets.store import load_maps
from netscope.vision.models.zoo import LoadedModel, Preprocess
from tests.vision.tiny import tiny_gap32

MODEL = "tests.vision.tiny:tiny_gap32"


@pytest.fixture
def tree(tmp_path):
    """11 small images at three depths, one broken file, one text file."""
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for i in range(11):
        folder = root / ("a" if i % 3 == 0 else "") / ("b" if i % 3 == 1 else "")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (rng.random((20 + i, 24, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:02d}.png")
    (root / "a" / "broken.jpg").write_bytes(b"not an image at all")
    (root / "notes.txt").write_text("not an image, not listed")
    return root


def lm():
    return LoadedModel("tiny", tiny_gap32(), Preprocess(16), None)


def test_files_and_bad_folders(tree, tmp_path):
    files = dataset_files(tree)
    assert len(files) == 12 and files == sorted(files) and "a/broken.jpg" in files
    assert "notes.txt" not in files
    with pytest.raises(NetscopeError, match="not a folder"):
        dataset_files(tree / "img01.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NetscopeError, match="no image files in this folder tree"):
        dataset_files(tmp_path / "empty")


def test_table_and_maps(tree, tmp_path):
    summary = explain_folder(lm(), tree, tmp_path / "out",
                             DatasetSettings(batch_size=4, workers=0, shard_size=4,
                                             metrics=("deletion",), steps=4, table="csv"))
    assert (summary.explained, summary.unreadable, summary.already) == (11, 1, 0)
    table = pd.read_csv(summary.table, keep_default_na=False)
    assert list(table["file"]) == dataset_files(tree)
    bad = table[table["status"] == "unreadable"]
    assert list(bad["file"]) == ["a/broken.jpg"] and "Pillow" in bad["error"].iloc[0]
    good = table[table["status"] == "ok"]
    assert ((good["deletion_auc"].astype(float) >= 0) & (good["probability"].astype(float)
                                                         > 0)).all()
    # a shard's map is the Grad-CAM map of that image, computed directly
    row = good.iloc[3]
    files, maps = load_maps(tmp_path / "out", row["shard"])
    assert files[int(row["map_index"])] == row["file"] and maps.dtype == np.float16
    from netscope.vision.models.images import load_image

    model = lm()
    x = model.preprocess.tensor(load_image(tree / row["file"]))
    direct = A.grad_cam(model.model, x).maps[0].numpy()
    np.testing.assert_allclose(maps[int(row["map_index"])], direct, atol=2e-3)
    assert int(row["class_index"]) == int(model.model(x).argmax())


def test_another_ranks_half_written_part_is_not_read(tree, tmp_path):
    """Ranks share the parts folder: a temporary file another rank is still writing
    (hidden, same suffix) is neither counted as done nor merged."""
    out = tmp_path / "out"
    explain_folder(lm(), tree, out, DatasetSettings(workers=0, table="csv"))
    (out / "parts" / ".r1-00000.csv.k2j4.csv").write_text("")  # as mkstemp leaves it
    assert store_mod.read_parts(out)["file"].tolist() == dataset_files(tree)
    assert len(pd.read_csv(store_mod.merge(out, "csv"))) == len(dataset_files(tree))


def test_workers_give_the_same_results(tree, tmp_path):
    a = explain_folder(lm(), tree, tmp_path / "w0", DatasetSettings(workers=0, table="csv"))
    b = explain_folder(lm(), tree, tmp_path / "w2", DatasetSettings(workers=2, table="csv"))
    ta, tb = pd.read_csv(a.table), pd.read_csv(b.table)
    pd.testing.assert_frame_equal(ta.drop(columns="shard"), tb.drop(columns="shard"))


def test_resumes_after_an_interruption(tree, tmp_path, monkeypatch):
    out = tmp_path / "out"
    settings = DatasetSettings(batch_size=2, workers=0, shard_size=2, table="csv")
    real, written = store_mod.ExplainStore.write_shard, []

    def two_then_stop(self, rows, files, maps):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(real(self, rows, files, maps))

    monkeypatch.setattr(store_mod.ExplainStore, "write_shard", two_then_stop)
    with pytest.raises(KeyboardInterrupt):
        explain_folder(lm(), tree, out, settings)
    monkeypatch.undo()
    assert sorted(p.name for p in (out / "parts").iterdir()) == ["r0-00000.csv", "r0-00001.csv"]
    assert not list(out.rglob(".*"))  # no half-written file
    again = explain_folder(lm(), tree, out, settings)
    assert again.already == 4 and again.explained + again.unreadable == 8
    table = pd.read_csv(again.table)
    assert sorted(table["file"]) == dataset_files(tree)  # each file once
    done = explain_folder(lm(), tree, out, settings)
    assert done.already == 12 and done.explained == 0


def test_another_run_in_the_same_folder_is_refused(tree, tmp_path):
    with pytest.raises(NetscopeError, match="attention rollout needs"):  # a CNN: no attention
        explain_folder(lm(), tree, tmp_path / "out", DatasetSettings(method="rollout",
                                                                     workers=0))
    assert not (tmp_path / "out").exists()  # a run that failed at once claims nothing
    explain_folder(lm(), tree, tmp_path / "out", DatasetSettings(workers=0, table="csv"))
    with pytest.raises(NetscopeError, match="holds results of another run .method: 'gradcam' "
                                            "there, 'saliency' now"):
        explain_folder(lm(), tree, tmp_path / "out",
                       DatasetSettings(method="saliency", workers=0, table="csv"))
    assert json.loads((tmp_path / "out" / "explain-run.json").read_text())["method"] == \
        "gradcam"
    with pytest.raises(NetscopeError, match="unknown method 'gradcamm'"):
        explain_folder(lm(), tree, tmp_path / "o2", DatasetSettings(method="gradcamm"))
    with pytest.raises(NetscopeError, match="unknown metric 'road'"):
        explain_folder(lm(), tree, tmp_path / "o2", DatasetSettings(metrics=("road",)))


def test_command_line(tree, tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["vision", "explain", str(tree), "--model", MODEL, "--out", str(out),
                 "--workers", "0", "--quiet", "--method", "eigencam"]) == 0
    captured = capsys.readouterr()
    assert "11 explained, 1 unreadable" in captured.out
    assert "1 file(s) could not be read" in captured.err
    kind = "parquet" if _has_pyarrow() else "csv"
    assert (out / f"results.{kind}").is_file()
    page = (out / "index.html").read_text()
    assert page.count("<figure") == 11 and "a/broken.jpg: not an image file" in page
    assert "Unreadable files" in page and "11 images explained with eigencam" in page
    assert main(["vision", "merge", str(out), "--table", "csv"]) == 0
    assert len(pd.read_csv(out / "results.csv")) == 12
    assert main(["vision", "explain", str(tmp_path / "nope"), "--model", MODEL, "--out",
                 str(out)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["vision", "merge", str(tmp_path)]) == 2
    assert "no finished shards" in capsys.readouterr().err


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def test_two_torchrun_ranks_on_gloo(tree, tmp_path):
    """torchrun with 2 CPU processes: each rank explains every other file into its own
    shards; rank 0 merges after a gloo barrier."""
    out = tmp_path / "dist"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
         "2", "-m", "netscope", "vision", "explain", str(tree), "--model", MODEL, "--out",
         str(out), "--workers", "0", "--table", "csv", "--quiet"],
        env=env, capture_output=True, text=True, timeout=180, cwd=os.getcwd())
    # the ranks' own messages come first, torchrun's summary last: show both on failure
    assert proc.returncode == 0, proc.stderr[:3000] + "\n...\n" + proc.stderr[-1000:]
    assert "rank 0:" in proc.stdout and "rank 1:" in proc.stdout
    table = pd.read_csv(out / "results.csv")
    assert sorted(table["file"]) == dataset_files(tree)
    assert {s[:2] for s in table["shard"].dropna()} == {"r0", "r1"}
    # the same maps as one process computes
    alone = explain_folder(lm(), tree, tmp_path / "alone", DatasetSettings(workers=0,
                                                                           table="csv"))
    ref = pd.read_csv(alone.table)
    pd.testing.assert_frame_equal(table.drop(columns=["shard", "map_index"]),
                                  ref.drop(columns=["shard", "map_index"]), atol=1e-6)


def test_folder_labels(tmp_path):
    """ImageFolder layout: each map explains the class its folder names; accuracy counted."""
    root = tmp_path / "byclass"
    rng = np.random.default_rng(1)
    for k in ("0", "2"):
        (root / k).mkdir(parents=True)
        for i in range(3):
            Image.fromarray((rng.random((18, 18, 3)) * 255).astype(np.uint8)).save(
                root / k / f"{i}.png")
    s = explain_folder(lm(), root, tmp_path / "out", DatasetSettings(workers=0, table="csv",
                                                                     labels="folder"))
    table = pd.read_csv(s.table)
    assert list(table["class_index"]) == [0, 0, 0, 2, 2, 2]
    assert list(table["correct"]) == list(table["predicted_index"] == table["class_index"])
    assert s.correct == int(table["correct"].sum())
    from netscope.vision.models.images import load_image

    model = lm()
    row = table.iloc[4]
    files, maps = load_maps(tmp_path / "out", row["shard"])
    x = model.preprocess.tensor(load_image(root / row["file"]))
    np.testing.assert_allclose(maps[int(row["map_index"])],
                               A.grad_cam(model.model, x, targets=2).maps[0].numpy(), atol=2e-3)
    (root / "7").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "7" / "a.png")
    with pytest.raises(NetscopeError, match="1 class folder.s. are not classes of the model: "
                                            "7 .class index 7 is out of range"):
        explain_folder(lm(), root, tmp_path / "o2", DatasetSettings(labels="folder"))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "loose.png")
    with pytest.raises(NetscopeError, match="loose.png is not"):
        explain_folder(lm(), root, tmp_path / "o3", DatasetSettings(labels="folder"))


def test_a_folder_of_unreadable_files_gives_a_table(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    for i in range(3):
        (root / f"x{i}.png").write_bytes(b"\x89PNG broken")
    s = explain_folder(lm(), root, tmp_path / "out", DatasetSettings(workers=0, table="csv"))
    table = pd.read_csv(s.table, keep_default_na=False)
    assert (s.explained, s.unreadable) == (0, 3) and set(table["status"]) == {"unreadable"}


@pytest.mark.parametrize("name, content, message", [
    ("r0-00001.csv", b"\xff\xfe\x00\x9c" * 50, "r0-00001.csv: unreadable (UnicodeDecodeError)"),
    ("r0-00001.csv", b"", "r0-00001.csv: unreadable (EmptyDataError)"),
    ("r0-abc.csv", b"file,status\n", "r0-abc.csv: not a part netscope wrote"),
    ("r0-00002.csv", b"name,value\nx,1\n", "r0-00002.csv: not a part of an explain run "
                                           "(no column 'file')"),
])
def test_damaged_or_foreign_parts_are_one_clear_line(tree, tmp_path, capsys, name, content,
                                                     message):
    out = tmp_path / "out"
    again = ["vision", "explain", str(tree), "--model", MODEL, "--out", str(out), "--workers",
             "0", "--quiet"]
    assert main(again) == 0
    capsys.readouterr()
    (out / "parts" / name).write_bytes(content)
    for argv in (["vision", "merge", str(out)], again):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.skipif(not _has_pyarrow(), reason="needs pyarrow for the Parquet table")
def test_a_merge_in_the_other_format_leaves_no_stale_table(tree, tmp_path):
    out = tmp_path / "out"
    explain_folder(lm(), tree, out, DatasetSettings(workers=0, table="parquet"))
    assert (out / "results.parquet").is_file()
    store_mod.merge(out, "csv")
    assert (out / "results.csv").is_file() and not (out / "results.parquet").exists()


def test_lrp_runs_keep_and_show_signed_relevance(tree, tmp_path):
    """An LRP run stores each image's signed relevance in [-1, 1] (evidence against the
    class is kept) and its gallery draws it on the diverging scale; the metrics still rank
    the positive map."""
    out = tmp_path / "lrp"
    assert main(["vision", "explain", str(tree), "--model", MODEL, "--out", str(out),
                 "--workers", "0", "--quiet", "--method", "lrp", "--metrics", "deletion"]) == 0
    table = pd.read_csv(out / "results.csv") if not _has_pyarrow() else \
        pd.read_parquet(out / "results.parquet")
    ok = table[table["status"] == "ok"]
    _, maps = load_maps(out, ok["shard"].iloc[0])
    assert maps.min() < 0 < maps.max() and np.abs(maps).max() <= 1.0 + 1e-3
    assert np.allclose(np.abs(maps).reshape(len(maps), -1).max(1), 1.0, atol=1e-3)
    page = (out / "index.html").read_text()
    assert "red for the class, blue against it" in page
    assert ok["deletion_auc"].between(0, 1).all()


def test_progress_lines_say_how_long_is_left(monkeypatch):
    """A long pass says within its first seconds how long it will take at its rate."""
    import time

    from netscope.timing import duration
    from netscope.vision.datasets.image_files import RateLine

    clock = iter([10.0, 14.0])
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    said = []
    line = RateLine("atlas", 1000, said.append, 0.0)
    line.tick(50, 0)  # 50 images in 10 s: 5/s, 950 left: 190 s
    line.tick(1000, 2)  # done: no estimate
    assert said == ["atlas: 50/1000 images, 5.0 images/s, 0 unreadable, about 3 min left",
                    "atlas: 1000/1000 images, 71.4 images/s, 2 unreadable"]
    assert [duration(s) for s in (0.2, 42, 600, 9000)] == ["1 s", "42 s", "10 min", "2.5 h"]
