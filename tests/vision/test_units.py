"""The unit atlas: receptive fields, streaming state, examples at known places, similarity,
circuits, diversity, resume, two torchrun ranks, the site, and bad input."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from netscope.cli import main
from netscope.errors import NetscopeError
from netscope.render.atlas_site import save_site
from netscope.vision.features.ascent import AscentConfig, visualize_filters
from netscope.vision.features.diversity import gram_similarity
from netscope.vision.units import atlas_run
from netscope.vision.units.atlas import build_atlas
from netscope.vision.units.atlas_run import AtlasSettings, record_folder
from netscope.vision.units.make import PictureSettings, make_atlas
from netscope.vision.units.receptive_field import Field, receptive_fields
from netscope.vision.units.site import site_views
from netscope.vision.units.streaming import UnitState
from tests.vision import tiny_units as T

LAYERS = ("detect", "spread", "mix")
SQUARES = [(4, 6), (10, 20), (16, 8), (22, 26), (26, 12), (8, 28)]  # even centres
EDGES = [6, 11, 15, 20, 25]


@pytest.fixture
def tree(tmp_path):
    """6 red squares, 5 edges, 4 plain grey images, one broken file."""
    root = tmp_path / "images"
    root.mkdir()
    rng = np.random.default_rng(0)
    pictures = {f"square{i}.png": T.red_square(rng, *c) for i, c in enumerate(SQUARES)}
    pictures |= {f"edge{i}.png": T.edge(rng, x) for i, x in enumerate(EDGES)}
    pictures |= {f"plain{i}.png": T.grey(rng) for i in range(4)}
    for name, img in pictures.items():
        Image.fromarray((img * 255).round().astype(np.uint8)).save(root / name)
    (root / "broken.png").write_bytes(b"not a picture")
    return root


def settings(**kw):
    return AtlasSettings(kw.pop("layers", LAYERS), workers=0, **kw)


def test_receptive_field_of_a_known_stack():
    """By hand: 5x5 (pad 2) -> field 5, jump 1, start 0; then 3x3 dilation 2 stride 2
    pad 2 -> field 5 + 4 = 9, jump 2, start 0 + (2 - 2) = 0; a 1x1 keeps it; a 2x2 max
    pool (stride 2) after that -> 9 + 2 = 11, jump 4, start 1."""
    m = nn.Sequential(T.detector().detect, nn.ReLU(), T.detector().spread, nn.MaxPool2d(2),
                      nn.Flatten(), nn.LazyLinear(2))
    m(torch.zeros(1, 3, 32, 32))
    f = receptive_fields(m, ["0", "2", "3"], 32)
    assert f["0"] == Field((5.0, 5.0), (1.0, 1.0), (0.0, 0.0), "geometry")
    assert f["2"] == Field((9.0, 9.0), (2.0, 2.0), (0.0, 0.0), "geometry")
    assert f["3"] == Field((11.0, 11.0), (4.0, 4.0), (1.0, 1.0), "geometry")
    assert f["2"].box(3, 5) == (2, 6, 11, 15)  # centre (6, 10), 9 pixels each way


class Residual(nn.Module):
    """a 3x3 (padding 1) plus a shifted 1x5 branch, summed; optionally a global gate."""

    def __init__(self, gate: bool):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(3, 4, (1, 5), padding=(0, 4), dilation=(1, 2))
        self.out, self.gate, self.fc = nn.Identity(), gate, nn.Linear(4, 2)

    def forward(self, x):
        y = self.a(x) + self.b(x)
        if self.gate:  # squeeze-and-excitation: every unit sees the whole image a little
            y = y * torch.sigmoid(y.mean((2, 3), keepdim=True))
        return self.fc(self.out(y).mean((2, 3)))


def test_residual_union_and_effective_fallback():
    """The sum's field is the union of its branches' (3x3 and 1x9): 3 x 9 around the same
    centre; a global gate cannot be read as geometry, so the gradient decides."""
    torch.manual_seed(0)
    f = receptive_fields(Residual(False), ["out", "b"], 16)
    assert f["b"] == Field((1.0, 9.0), (1.0, 1.0), (0.0, 0.0), "geometry")
    assert f["out"] == Field((3.0, 9.0), (1.0, 1.0), (0.0, 0.0), "geometry")
    gated = receptive_fields(Residual(True), ["out"], 16)["out"]
    assert gated.method == "effective" and gated.size[1] >= 9 and gated.jump == (1.0, 1.0)


def test_streaming_top_k_equals_a_full_sort_and_merges_exactly():
    rng = np.random.default_rng(3)
    n, c, k = 200, 5, 7
    response = rng.integers(0, 6, (n, c)).astype(float)  # many ties
    y, x = rng.integers(0, 9, (n, c)), rng.integers(0, 9, (n, c))
    pooled = rng.standard_normal((n, c))
    whole = UnitState(k, 10, c)
    parts = [UnitState(k, 10, c), UnitState(k, 10, c)]
    for start in range(0, n, 13):
        sl = slice(start, min(n, start + 13))
        ids = np.arange(n)[sl]
        whole.update(response[sl], ids, y[sl], x[sl], pooled[sl])
        parts[start // 13 % 2].update(response[sl], ids, y[sl], x[sl], pooled[sl])
    for u in range(c):
        order = np.lexsort((np.arange(n), -response[:, u]))[:k]  # value down, index up
        assert whole.arrays["top_image"][u].tolist() == order.tolist()
        assert whole.arrays["top_y"][u].tolist() == y[order, u].tolist()
    both = parts[1].merge(parts[0])
    for key, value in whole.arrays.items():
        np.testing.assert_allclose(both.arrays[key], value, rtol=1e-12, err_msg=key)
    assert both.n == n
    stats = whole.statistics()
    np.testing.assert_allclose(stats["fires"], (response > 0).mean(0))
    np.testing.assert_allclose(stats["mean"], response.mean(0))
    top = np.sort(response, 0)[::-1][:2].sum(0)  # top 1% of 200 images: 2
    np.testing.assert_allclose(stats["top1_share"], top / response.sum(0))
    np.testing.assert_allclose(whole.correlation(), np.corrcoef(pooled.T), atol=1e-10)


def test_examples_at_known_places(tree, tmp_path):
    summary = record_folder(T.loaded(), tree, tmp_path / "out", settings(top_k=6,
                                                                         batch_size=4))
    assert summary.recorded == 15 and summary.unreadable == 1
    atlas = build_atlas(T.loaded(), tree, summary.files, summary.state, summary.layouts)
    ex = atlas.examples()
    for layer in ("detect", "spread"):
        red = ex[(ex.layer == layer) & (ex.unit == 0)]
        assert set(red.file) == {f"square{i}.png" for i in range(6)}
        for row in red.itertuples():
            assert (row.y, row.x) == SQUARES[int(row.file[6])]  # exactly the square's centre
        assert red.activation.round(6).eq(25.0).all()
        edges = ex[(ex.layer == layer) & (ex.unit == 1)]
        assert set(edges.file[:5]) == {f"edge{i}.png" for i in range(5)}
        for row in edges.head(5).itertuples():
            assert abs(row.x - EDGES[int(row.file[4])]) <= 1
    spread = atlas.layers["spread"]
    assert spread.field == Field((9.0, 9.0), (2.0, 2.0), (0.0, 0.0), "geometry")
    # a duplicated unit correlates 1 with its copy, and its filter is the same
    assert atlas.layers["detect"].correlation[0, 2] == pytest.approx(1.0, abs=1e-9)
    assert atlas.layers["detect"].similar(0, 1)[0][:2] == (2, pytest.approx(1.0))
    assert atlas.layers["detect"].weights[1][0, 2] == pytest.approx(1.0)
    # mix unit 0 = spread 0 + spread 1: those two are its strongest inputs, unit 2 none
    earlier, terms = atlas.layers["mix"].inputs
    assert earlier == "spread"
    assert set(np.argsort(-terms[0])[:2]) == {0, 1} and terms[0, 2] == pytest.approx(0)
    assert np.argmax(terms[1]) == 2
    # mix feeds the pooled linear head: unit 0 supports class 0 and 2, not class 1
    support = atlas.layers["mix"].classes
    assert support.shape == (2, 3) and support[0, 1] == 0 and support[0, 0] > 0
    assert atlas.layers["detect"].classes is None
    stats = atlas.statistics()
    assert set(stats.field) == {"geometry"} and (stats.images == 15).all()
    files = atlas.file_table()
    assert files.set_index("file").loc["broken.png", "status"] == "unreadable"


def test_resume_after_an_interruption_gives_the_same_tables(tree, tmp_path, monkeypatch):
    lm = T.loaded()
    clean = make_atlas(lm, tree, tmp_path / "clean", settings(shard_size=4, batch_size=2),
                       None, table="csv")
    real = atlas_run.record_batch
    calls = {"n": 0}

    def dying(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(atlas_run, "record_batch", dying)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        make_atlas(lm, tree, out, settings(shard_size=4, batch_size=2), None, table="csv")
    assert len(list((out / "shards").glob("*.npz"))) == 2  # 8 images in finished shards
    monkeypatch.setattr(atlas_run, "record_batch", real)
    again = make_atlas(lm, tree, out, settings(shard_size=4, batch_size=2), None,
                       table="csv")
    assert again.summary.already == 8
    for name in ("units", "unit_stats", "files"):
        pd.testing.assert_frame_equal(pd.read_csv(again.tables[name]),
                                      pd.read_csv(clean.tables[name]), rtol=1e-9)
    with pytest.raises(NetscopeError, match="top_k: 9 there, 3 now"):
        make_atlas(lm, tree, out, settings(shard_size=4, top_k=3), None)


KILLED_RUN = """
import os, signal, sys
from netscope.files.atomic import write_atomic
from netscope.vision.units import atlas_run, store
from netscope.vision.units.atlas_run import AtlasSettings
from netscope.vision.units.make import make_atlas
from tests.vision import tiny_units as T

where, tree, out = sys.argv[1:]
real_batch, real_write = atlas_run.record_batch, store.write_bytes
calls = {"n": 0}

def batch(*args, **kw):
    calls["n"] += 1
    if where == "batch" and calls["n"] == 5:
        os.kill(os.getpid(), signal.SIGKILL)  # mid-shard: 2 shards finished
    return real_batch(*args, **kw)

def write(path, data):
    if where == "write" and path.name.endswith("00001.npz"):  # the second shard, half
        def half(p):
            p.write_bytes(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        return write_atomic(path, half)
    return real_write(path, data)

atlas_run.record_batch, store.write_bytes = batch, write
make_atlas(T.loaded(), tree, out, AtlasSettings(("detect", "spread", "mix"), workers=0,
           shard_size=4, batch_size=2), None, table="csv")
"""


@pytest.mark.parametrize("where, finished", [("batch", 2), ("write", 1)])
def test_resume_after_kill_9_gives_the_same_tables(tree, tmp_path, where, finished):
    """A real SIGKILL (no handler runs) mid-shard, and in the middle of writing a shard:
    the finished shards stay, the half-written one is never read (and is removed on the
    rerun), and the resumed run's tables equal a clean run's."""
    lm = T.loaded()
    clean = make_atlas(lm, tree, tmp_path / "clean", settings(shard_size=4, batch_size=2),
                       None, table="csv")
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", KILLED_RUN, where, str(tree), str(out)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr[-2000:]
    assert len(list((out / "shards").glob("r*.npz"))) == finished
    assert bool(list((out / "shards").glob(".*"))) == (where == "write")  # the torn temp
    assert not (out / "units.csv").exists()
    again = make_atlas(lm, tree, out, settings(shard_size=4, batch_size=2), None,
                       table="csv")
    assert again.summary.already == 4 * finished
    assert not list((out / "shards").glob(".*"))
    for name in ("units", "unit_stats", "files"):
        pd.testing.assert_frame_equal(pd.read_csv(again.tables[name]),
                                      pd.read_csv(clean.tables[name]), rtol=1e-9)


def test_diversity_term_pushes_pictures_apart():
    lm = T.loaded()
    cfg = AscentConfig(steps=30, size=32, param="fourier", lr=0.05)
    runs = {}
    for weight in (0.0, 2.0):
        r = visualize_filters(lm.model, "detect", [1], lm.preprocess, cfg, copies=3,
                              diversity=weight)
        with torch.no_grad():
            a = lm.model.detect(lm.preprocess.normalize(r.images.float()))
        runs[weight] = float(gram_similarity(a, 3).mean())
    assert runs[2.0] < runs[0.0] - 0.01


def test_phase_parametrization_keeps_the_spectrum():
    from netscope.vision.features.parametrize import PhaseParam
    from netscope.vision.models.zoo import Preprocess

    rng = np.random.default_rng(0)
    amp = np.abs(rng.standard_normal((3, 16, 9))) + 0.1
    amp[:, 0, 0] = 8.0  # mean 0.5 on a 16x16 picture (ortho: DC = 16 x mean)
    p = PhaseParam(Preprocess(16, (0, 0, 0), (1, 1, 1)), 16, torch.float64, spectrum=amp)
    x = p.to_input(p.init([1, 2], 0.0))
    back = torch.fft.rfft2(x, norm="ortho").abs()
    # irfft2 keeps the Hermitian part only: columns 1..7 are free, so exact there
    np.testing.assert_allclose(back[:, :, :, 1:8].numpy(), np.broadcast_to(
        amp[:, :, 1:8], (2, 3, 16, 7)), rtol=1e-9)
    np.testing.assert_allclose(x.mean((2, 3)).numpy(), 0.5, rtol=1e-9)
    with pytest.raises(NetscopeError, match="amplitude spectrum of shape"):
        PhaseParam(Preprocess(16), 16, torch.float64, spectrum=None)


def test_site_pages_and_links(tree, tmp_path):
    out = tmp_path / "site"
    run = make_atlas(T.loaded(), tree, out, settings(layers=("detect", "mix"), top_k=3),
                     PictureSettings(steps=2, diverse=2), table="csv")
    views = site_views(run.atlas, T.loaded(), tree)
    assert save_site(run.atlas, views, out) == out / "index.html"
    pages = list(out.rglob("*.html"))
    assert len(pages) == 1 + 2 + 3 + 2  # index, two layer pages, 3 + 2 unit pages
    for page in pages:
        text = page.read_text()
        for ref in _links(text):
            assert (page.parent / ref).resolve().is_file(), f"{page}: {ref}"
    unit = (out / "mix" / "0.html").read_text()
    assert "Strongest inputs from detect" in unit and "../detect/0.html" in unit
    assert "Classes it supports" in unit and "Diversity set" in unit


def test_where_a_unit_fires_inside_its_patch(tree, tmp_path):
    """The unit's grid is placed on the pixels through its field: a one-hot grid peaks at
    that unit's centre; on a real square image the red-square unit's map peaks on the
    square (through the strided 'spread' layer too), and the site draws it per patch."""
    from netscope.vision.units.atlas_run import probe_layers
    from netscope.vision.units.fire_maps import pixel_map, unit_grids

    field = Field((9.0, 9.0), (2.0, 2.0), (0.0, 0.0), "geometry")
    hot = np.zeros((16, 16))
    hot[5, 9] = 1
    assert np.unravel_index(np.argmax(pixel_map(hot, field, 32)), (32, 32)) == (10, 18)
    ramp = np.arange(16.0)[None].repeat(16, 0)
    assert np.allclose(pixel_map(ramp, field, 32)[0, :31], np.arange(31) / 2)  # linear
    lm = T.loaded()
    layouts, _ = probe_layers(lm, ("detect", "spread"))
    img = T.red_square(np.random.default_rng(1), *SQUARES[1])
    grids = unit_grids(lm, lm.preprocess.tensor(img), layouts)
    fields = receptive_fields(lm.model, ["detect", "spread"], T.SIZE)
    for name in ("detect", "spread"):
        m = pixel_map(grids[name][0], fields[name], T.SIZE)
        peak = np.unravel_index(np.argmax(m), m.shape)
        assert abs(peak[0] - SQUARES[1][0]) <= 1 and abs(peak[1] - SQUARES[1][1]) <= 1, name
    out = tmp_path / "site"
    run = make_atlas(lm, tree, out, settings(layers=("detect",), top_k=2), None, table="csv")
    save_site(run.atlas, site_views(run.atlas, lm, tree), out)
    page = (out / "detect" / "0.html").read_text()
    assert "img/u0-f0.jpg" in page and "Where the unit fires" in page
    fired = np.asarray(Image.open(out / "detect" / "img" / "u0-f0.jpg")).astype(float)
    plain = np.asarray(Image.open(out / "detect" / "img" / "u0-p0.jpg")).astype(float)
    assert np.abs(fired - plain).mean() > 10  # a heat map is drawn over the patch


def _links(text: str) -> list[str]:
    import re

    return [r for r in re.findall(r"(?:src|href)='([^']+)'", text) if not r.startswith("#")]


def test_bad_input(tree, tmp_path):
    lm = T.loaded()
    with pytest.raises(NetscopeError, match=r"layer nope \(no such layer\); layers with a "
                       r"spatial grid: detect, relu, spread, mix"):
        record_folder(lm, tree, tmp_path / "a", settings(layers=("nope",)))
    with pytest.raises(NetscopeError, match=r"layer fc \(its output has no grid\)"):
        record_folder(lm, tree, tmp_path / "a", settings(layers=("fc",)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(NetscopeError, match="no image files"):
        record_folder(lm, tmp_path / "empty", tmp_path / "a", settings())
    one = tmp_path / "one"
    one.mkdir()
    Image.open(tree / "square0.png").save(one / "x.png")
    run = make_atlas(lm, one, tmp_path / "b", settings(top_k=20), None, table="csv")
    ex = pd.read_csv(run.tables["units"])
    assert len(ex) == 3 + 3 + 2 and (ex["rank"] == 0).all()  # K > images: what there is
    stats = pd.read_csv(run.tables["unit_stats"])
    assert stats["sparseness"].between(0, 1).all() and stats.notna().all().all()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"nope")
    with pytest.raises(NetscopeError, match="none of the 1 image files could be read"):
        make_atlas(lm, bad, tmp_path / "c", settings(), None)
    with pytest.raises(NetscopeError, match="top_k must be at least 1"):
        settings(top_k=0).check()


def test_patches_past_the_edge_are_padded(tree, tmp_path):
    from netscope.render.atlas_site import crop

    view = np.ones((8, 8, 3), np.float32)
    patch = crop(view, (-2, 6, 3, 11))
    assert patch.shape == (5, 5, 3) and patch[0, 0, 0] == 0.5 and patch[2, 0, 0] == 1.0
    whole = crop(view, (-5, -5, 20, 20))  # a field larger than the image: the image
    assert whole.shape == (8, 8, 3) and whole.min() == 1.0
    run = make_atlas(T.loaded(), tree, tmp_path / "o", settings(layers=("spread",)), None,
                     table="csv")
    ex = pd.read_csv(run.tables["units"])
    assert ex["padded"].any()  # squares near the border: their 9x9 fields reach past it
    save_site(run.atlas, site_views(run.atlas, T.loaded(), tree), tmp_path / "o")
    page = (tmp_path / "o" / "spread" / "0.html").read_text()
    assert "reach past the image edge" in page


def test_cli_atlas(tree, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["vision", "atlas", str(tree), "--model", "tests.vision.tiny_units:detector",
                 "--layers", "detect,mix", "--out", str(out), "--no-pictures", "--table",
                 "csv", "--workers", "0", "--quiet"])
    assert code == 0
    printed = capsys.readouterr()
    assert "15 images recorded, 1 unreadable" in printed.out and "site:" in printed.out
    assert "1 file(s) could not be read" in printed.err
    assert main(["vision", "atlas", str(tmp_path / "missing"), "--layers", "x"]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["vision", "atlas", str(tree)]) == 2
    assert "name the layers" in capsys.readouterr().err


def test_two_torchrun_ranks_merge_to_the_one_process_atlas(tree, tmp_path):
    model = "tests.vision.tiny_units:detector"
    args = ["vision", "atlas", str(tree), "--model", model, "--layers", "detect,mix",
            "--no-pictures", "--table", "csv", "--workers", "0", "--quiet",
            "--shard-size", "3"]
    from tests.vision.torchrun import two_ranks

    two_ranks([*args, "--out", str(tmp_path / "dist")])
    shards = {p.name[:2] for p in (tmp_path / "dist" / "shards").glob("*.npz")}
    assert shards == {"r0", "r1"}
    assert main([*args, "--out", str(tmp_path / "alone")]) == 0
    for name in ("units", "unit_stats", "files"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "dist" / f"{name}.csv"),
                                      pd.read_csv(tmp_path / "alone" / f"{name}.csv"),
                                      rtol=1e-9)


def test_concepts_of_one_prediction(tree, tmp_path):
    """On the detector, mix is linear into a bias-free pooled head: the unit terms sum to
    the class score exactly; a red square's class-0 score is all mix unit 0, whose map
    peaks on the square."""
    from netscope.vision.models.images import load_image
    from netscope.vision.units.concepts import attach_atlas, concepts

    lm = T.loaded()
    rgb = load_image(tree / "square1.png")
    x = lm.preprocess.tensor(rgb)
    c = concepts(lm.model, x, [0], layer="mix", top=2, image=lm.preprocess.image(rgb))
    assert c.units[0] == 0 and c.terms.sum() == pytest.approx(c.score, rel=1e-5)
    assert c.terms[1] == 0
    peak = np.unravel_index(np.argmax(c.maps[0]), c.maps[0].shape)
    assert abs(peak[0] - SQUARES[1][0]) <= 2 and abs(peak[1] - SQUARES[1][1]) <= 2
    assert c._repr_png_()[:4] == b"\x89PNG" and "unit" in c._repr_html_()
    out = tmp_path / "atlas"
    run = make_atlas(lm, tree, out, settings(layers=("mix",), top_k=2),
                     PictureSettings(steps=2, diverse=0), table="csv")
    save_site(run.atlas, site_views(run.atlas, lm, tree), out)
    attach_atlas(c, out, "detector", T.SIZE)
    assert c.atlas[0]["picture"].shape == (128, 128, 3) and len(c.atlas[0]["patches"]) == 2
    with pytest.raises(NetscopeError, match="built for model 'detector' at 32 px, not 'other'"):
        attach_atlas(c, out, "other", T.SIZE)
    c.layer = "detect"
    with pytest.raises(NetscopeError, match="has layers mix, not detect"):
        attach_atlas(c, out, "detector", T.SIZE)
    with pytest.raises(NetscopeError, match="one image at a time"):
        concepts(lm.model, torch.cat([x, x]), layer="mix")


def test_demo_folder_is_offline_and_written_once(tmp_path):
    from netscope.vision.units.demo import demo_folder

    folder = demo_folder(tmp_path / "demo")
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) == 60 and "chelsea-whole.jpg" in files and "china-centre.jpg" in files
    before = (folder / "china-centre.jpg").stat().st_mtime_ns
    demo_folder(tmp_path / "demo")
    assert (folder / "china-centre.jpg").stat().st_mtime_ns == before


def test_a_vision_transformers_token_grid(tree, tmp_path):
    """A ViT block's tokens become an 8x8 grid of units; attention mixes every patch, so
    the field is the effective one, and the patch embedding's is geometric (4x4, stride 4)."""
    from netscope.vision.models.zoo import LoadedModel, Preprocess
    from tests.vision.tiny_transformers import tiny_vit

    lm = LoadedModel("vit", tiny_vit(), Preprocess(32, (0, 0, 0), (1, 1, 1)), None)
    run = make_atlas(lm, tree, tmp_path / "vit", settings(layers=("patch_embed", "blocks.0"),
                                                          top_k=3), None, table="csv")
    fields = {n: la.field for n, la in run.atlas.layers.items()}
    assert fields["patch_embed"] == Field((4.0, 4.0), (4.0, 4.0), (1.5, 1.5), "geometry")
    assert fields["blocks.0"].method == "effective" and fields["blocks.0"].jump == (4.0, 4.0)
    assert run.atlas.layers["blocks.0"].grid == (8, 8) and run.atlas.layers["blocks.0"].units == 16
    ex = pd.read_csv(run.tables["units"])
    assert len(ex) == 2 * 16 * 3 and ex[["y", "x"]].max().max() < 32
    assert run.atlas.layers["blocks.0"].inputs[0] == "patch_embed"


def test_a_hugging_face_vit(tree, tmp_path):
    """A ViTForImageClassification built from a config (no weights), as it comes: its
    ImageClassifierOutput, its conv patch projection and a block's token grid, with
    circuits between them."""
    from netscope.vision.models.zoo import LoadedModel, Preprocess
    from tests.vision.test_model_outputs import _hf_vit

    model = _hf_vit("sdpa")
    names = [n for n, _ in model.named_modules()]
    embed = next(n for n in names if n.endswith("patch_embeddings.projection"))
    block = next(n for n in names if n.endswith((".layer.0", ".layers.0")))
    lm = LoadedModel("hf-vit", model, Preprocess(32, (0, 0, 0), (1, 1, 1)), None)
    run = make_atlas(lm, tree, tmp_path / "hf", settings(layers=(embed, block), top_k=3),
                     None, table="csv")
    layers = run.atlas.layers
    # the whole model cannot be traced by torch.fx, so even the projection's field is the
    # effective one, and it comes out as the geometry would give it
    assert layers[embed].field == Field((4.0, 4.0), (4.0, 4.0), (1.5, 1.5), "effective")
    assert layers[block].field.method == "effective" and layers[block].grid == (8, 8)
    assert layers[block].inputs[0] == embed and layers[block].units == 16
    assert len(pd.read_csv(run.tables["units"])) == 2 * 16 * 3


def test_concept_relevance_works_with_the_commands_default_layer():
    """The default layer of a pooled CNN is the pooling's input; concept relevance reads
    the output of the module that makes it (here ``mix``) instead of refusing."""
    from netscope.vision.units.concepts import concepts

    rng = np.random.default_rng(0)
    x = torch.from_numpy(T.red_square(rng, 12, 14).transpose(2, 0, 1)[None]).float()
    model = T.detector()
    got = concepts(model, x, [0], relevance="lrp", top=2)
    by_layer = concepts(model, x, [0], layer="mix", relevance="lrp", top=2)
    assert got.layer.endswith(":input")
    np.testing.assert_allclose(got.terms, by_layer.terms, rtol=1e-6)


def test_the_site_index_shows_units_and_its_real_tables(tree, tmp_path):
    """The index linked to itself, named a files.csv that was never written and showed no
    unit; a signed layer's "fires 100%" came without a word. Now: no self link, the tables
    written, a strip of units per layer, and a note on signed layers."""
    lm = T.loaded()
    signed = torch.nn.Conv2d(3, 3, 5, padding=2)  # the detector shifted below 0
    with torch.no_grad():
        signed.weight.copy_(lm.model.detect.weight)
        signed.bias.fill_(-30.0)
    lm.model.detect = signed
    out = tmp_path / "atlas"
    run = make_atlas(lm, tree, out, settings(layers=("detect", "mix"), top_k=2), None,
                     table="csv")
    save_site(run.atlas, site_views(run.atlas, lm, tree), out)
    index = (out / "index.html").read_text()
    assert "atlas index</a>" not in index and "files.parquet" not in index
    assert "Tables: units.csv, unit_stats.csv, files.csv." in index
    assert "<a href='detect/0.html' title='unit 0'><img src='detect/img/u0-p0.jpg'" in index
    assert "1 unreadable, listed in the files table" in index
    assert "atlas index</a>" in (out / "detect" / "index.html").read_text()
    # detect is now a convolution whose outputs average below 0 before its ReLU; mix comes
    # after ReLUs through non-negative weights
    assert run.atlas.layers["detect"].statistics()["mean_pooled"].max() < 0
    assert "outputs are signed" in (out / "detect" / "index.html").read_text()
    assert "outputs are signed" in (out / "detect" / "1.html").read_text()
    assert "outputs are signed" not in (out / "mix" / "index.html").read_text()
