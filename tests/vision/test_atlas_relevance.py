"""Relevance maximization in the atlas: images ranked by each unit's share of the predicted
class's relevance (zennit-crp's reference images), streamed and merged exactly, equal to
LRP and activation x gradient computed directly, features taking their part of their
layer's relevance, and the unit pages showing them."""

import numpy as np
import pandas as pd
import pytest
import torch

from netscope.cli import main
from netscope.errors import NetscopeError
from netscope.vision.core.capture import LayerRef
from netscope.vision.methods.relevance.propagate import lrp
from netscope.vision.units.atlas import build_atlas
from netscope.vision.units.atlas_run import AtlasSettings, probe_layers, record_folder
from netscope.vision.units.relevance import unit_relevance
from netscope.vision.units.streaming import UnitState
from tests.vision import tiny_units as T
from tests.vision.test_units import tree  # noqa: F401  (the fixture)

LAYERS = ("detect", "spread", "mix")


def pictures(n=4):
    rng = np.random.default_rng(0)
    images = [T.red_square(rng, 8 + 3 * i, 10 + 2 * i) for i in range(n)]
    images += [T.edge(rng, 8 + 3 * i) for i in range(n)]
    return torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2)).float()


def test_relevance_top_k_streams_and_merges_exactly():
    rng = np.random.default_rng(1)
    n, c, k = 120, 4, 5
    share = rng.integers(-3, 4, (n, c)) / 4  # ties
    y, x = rng.integers(0, 7, (n, c)), rng.integers(0, 7, (n, c))
    whole, parts = UnitState(k, 10, c), [UnitState(k, 10, c), UnitState(k, 10, c)]
    for start in range(0, n, 11):
        sl = slice(start, min(n, start + 11))
        ids = np.arange(n)[sl]
        whole.update_relevance(share[sl], ids, y[sl], x[sl])
        parts[start // 11 % 2].update_relevance(share[sl], ids, y[sl], x[sl])
    for u in range(c):
        order = np.lexsort((np.arange(n), -share[:, u]))[:k]
        assert whole.arrays["rel_image"][u].tolist() == order.tolist()
        assert whole.arrays["rel_x"][u].tolist() == x[order, u].tolist()
    both = parts[1].merge(parts[0])
    for key in ("rel_value", "rel_image", "rel_y", "rel_x"):
        np.testing.assert_array_equal(both.arrays[key], whole.arrays[key])
    assert UnitState(k, 10, c).merge(whole).has_relevance  # a shard without any image


@pytest.mark.parametrize("how", ["gradient", "lrp"])
def test_unit_relevance_equals_the_direct_computation(how):
    model, x = T.detector(), pictures()
    layouts, _ = probe_layers(T.loaded(), LAYERS)
    refs = {n: LayerRef.parse(n) for n in LAYERS}
    got = unit_relevance(model, x, refs, layouts, how)
    if how == "lrp":
        heat = lrp(model, x, None, units=list(LAYERS))
        maps = heat.extras["unit_relevance"]
    else:
        from netscope.vision.core.capture import capture

        with capture(model, list(refs.values())) as rec, torch.enable_grad():
            out = model(x.clone().requires_grad_(True))
            acts = [rec[r] for r in refs.values()]
            grads = torch.autograd.grad(out.max(1).values.sum(), acts)
        maps = {n: a.detach() * g for n, a, g in zip(LAYERS, acts, grads, strict=True)}
    for name in LAYERS:
        total = maps[name].flatten(2).sum(2)
        want = total / (total.abs().sum(1, keepdim=True) + 1e-10)
        np.testing.assert_allclose(got[name][0], want.numpy(), rtol=1e-5, atol=1e-7)
        pos = maps[name].flatten(2).argmax(2).numpy()
        w = maps[name].shape[-1]
        np.testing.assert_array_equal(got[name][1], pos // w)
        np.testing.assert_array_equal(got[name][2], pos % w)
    # every image is predicted class 0 (square + edge); detect unit 2, the square
    # detector's copy, feeds only class 1: it fires on squares but takes no relevance
    assert np.all(got["detect"][0][:, 2] == 0)
    assert np.all(got["detect"][0][:4, 0] > 0)  # the square detector on the squares


def test_atlas_ranks_images_by_relevance(tree, tmp_path):  # noqa: F811
    lm = T.loaded()
    summary = record_folder(lm, tree, tmp_path / "out", AtlasSettings(
        LAYERS, top_k=6, batch_size=4, workers=0, relevance="lrp"))
    atlas = build_atlas(lm, tree, summary.files, summary.state, summary.layouts)
    atlas.relevance_how = "lrp"
    used = atlas.examples("relevance")
    assert set(used.columns) >= {"relevance", "y", "x", "top", "left"}
    square = used[(used.layer == "detect") & (used.unit == 0) & (used.relevance > 0)]
    assert set(square.file) == {f"square{i}.png" for i in range(6)}
    copy = used[(used.layer == "detect") & (used.unit == 2)]
    assert (copy.relevance == 0).all()  # the copy fires on squares but is never used
    fired = atlas.examples()
    assert set(fired[(fired.layer == "detect") & (fired.unit == 2)].file) == \
        {f"square{i}.png" for i in range(6)}
    with pytest.raises(NetscopeError, match="relevance must be one of gradient, lrp"):
        AtlasSettings(LAYERS, relevance="saliency").check()


def test_cli_atlas_pages_show_the_most_relevant_images(tree, tmp_path):  # noqa: F811
    out = tmp_path / "atlas"
    assert main(["vision", "atlas", str(tree), "--model", "tests.vision.tiny_units:detector",
                 "--layers", "detect,mix", "--relevance", "gradient", "--top", "3",
                 "--no-pictures", "--table", "csv", "--workers", "0", "--quiet", "--out",
                 str(out)]) == 0
    table = pd.read_csv(out / "units_by_relevance.csv")
    assert set(table.layer) == {"detect", "mix"}
    page = (out / "detect" / "0.html").read_text()
    assert "<h2>Most relevant images</h2>" in page and "activation x gradient" in page
    assert "img/u0-r0.jpg" in page and (out / "detect" / "img" / "u0-r0.jpg").is_file()
    assert "No image: the unit takes no positive share" in (out / "detect" / "2.html") \
        .read_text()
    again = tmp_path / "plain"
    assert main(["vision", "atlas", str(tree), "--model", "tests.vision.tiny_units:detector",
                 "--layers", "detect", "--top", "3", "--no-pictures", "--table", "csv",
                 "--workers", "0", "--quiet", "--out", str(again)]) == 0
    assert not (again / "units_by_relevance.csv").exists()
    assert "Most relevant images" not in (again / "detect" / "0.html").read_text()
