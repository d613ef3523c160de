"""Every result shows itself in a notebook: an HTML fragment whose styles apply only inside
it, a PNG where a picture is the point, and a short text form."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from netscope import vision as V
from netscope.render.notebook import SCOPE, scoped_css
from tests.vision.tiny import TinyGAP

PNG = b"\x89PNG"


def _scoped_only(page: str) -> None:
    """A fragment: one container, no document, every style rule inside the container."""
    assert page.startswith(f"<div class='{SCOPE}'>") and page.endswith("</div>")
    assert "<!doctype" not in page.lower() and "<body" not in page and "<html" not in page
    for css in re.findall(r"<style>(.*?)</style>", page, re.S):
        for selectors in re.findall(r"([^{}]+)\{", css):
            for sel in selectors.split(","):
                assert sel.strip().startswith(f".{SCOPE}"), sel


def test_scoped_css():
    assert scoped_css("body{margin:0}td,th{padding:1px}img{max-width:9px}") == (
        f".{SCOPE}{{margin:0}}.{SCOPE} td,.{SCOPE} th{{padding:1px}}.{SCOPE} img{{max-width:9px}}")
    assert scoped_css("body p{color:red}") == f".{SCOPE} p{{color:red}}"


@pytest.fixture(scope="module")
def tiny():
    return TinyGAP(dtype=torch.float32).eval(), torch.randn(2, 3, 8, 8)


def test_vision_results_show_themselves(tiny):
    model, x = tiny
    for heat in (V.grad_cam(model, x), V.explain("saliency", model, x),
                 V.explain("lrp", model, x)):
        assert heat._repr_png_()[:4] == PNG
        page = heat._repr_html_()
        _scoped_only(page)
        assert f"method=&#x27;{heat.method}&#x27;" in page and "class 2" in page
        text = repr(heat)
        assert len(text) < 300 and text.startswith(f"Heatmaps(method={heat.method!r}")
    acts = V.activations(model, x, ["features.1", "features.3"])
    assert acts._repr_png_()[:4] == PNG and isinstance(acts, dict)
    _scoped_only(acts._repr_html_())
    assert repr(acts) == "Activations({'features.1': (2, 4, 8, 8), 'features.3': (2, 5, 8, 8)})"
    top = V.predict(model, x, 2)
    assert isinstance(top, list) and top[0][0][1] == "class 2"
    page = top._repr_html_()
    _scoped_only(page)
    assert page.count("<tr>") == 1 + 4


def test_imagenet_sized_outputs_are_labelled_with_class_names():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 1000)).eval()
    heat = V.grad_cam(model, torch.randn(1, 3, 8, 8), [281], layer="1")
    assert "tabby" in repr(heat) and "tabby" in heat._repr_html_()


def test_ascent_pictures_show_themselves(tiny):
    from netscope.vision.features.ascent import AscentConfig, visualize_filters
    from netscope.vision.models.zoo import Preprocess

    model, _ = tiny
    result = visualize_filters(model, "features.1", [0, 1], Preprocess(8),
                               AscentConfig(steps=2, size=16))
    assert result._repr_png_()[:4] == PNG
    assert repr(result).startswith("AscentResult(2 pictures 16x16, 2 steps")


def test_ascent_pictures_are_drawn_four_to_a_row_where_they_belong():
    """Eight pictures in one row were too small to read in a notebook: they come four to
    a row; each tile shows its own picture (solid colours found at their places)."""
    import io

    from PIL import Image

    from netscope.vision.features.ascent import AscentResult

    colours = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1),
               (0, 0, 0)]
    images = torch.tensor(colours, dtype=torch.float32)[:, :, None, None].expand(8, 3, 32, 32)
    result = AscentResult(images.clone(), torch.zeros(1, 8), [f"unit {i}" for i in range(8)])
    png = np.asarray(Image.open(io.BytesIO(result._repr_png_())).convert("RGB")) / 255
    h, w, _ = png.shape
    assert (w, h) == (800, 440)  # 2 rows of 4 tiles, 2 x 2.2 inches each at 100 dpi
    for i, colour in enumerate(colours[:6]):
        row, col = divmod(i, 4)  # the tile's centre, by the grid
        y, x = int((row + 0.55) * h / 2), int((col + 0.5) * w / 4)
        np.testing.assert_allclose(png[y, x], colour, atol=0.02, err_msg=f"tile {i}")


def test_evaluation_and_comparison_are_short_and_scoped(tiny, tmp_path):
    from netscope.data.tabular import load_table
    from netscope.multitask import protocols
    from netscope.multitask.comparison.results import compare
    from netscope.vision.evaluation import EvalSettings, evaluate
    from netscope.vision.models.zoo import LoadedModel, Preprocess

    model, _ = tiny
    rng = np.random.default_rng(0)
    ev = evaluate(LoadedModel("tiny", model, Preprocess(8), None),
                  [("a", rng.random((8, 8, 3)).astype(np.float32))], ["gradcam", "random"],
                  EvalSettings(metric_settings=dict(steps=4, road_percentages=(50,),
                                                    sanity_checkpoints=2)))
    _scoped_only(ev._repr_html_())
    assert "most faithful here:" in repr(ev) and len(repr(ev)) < 2000
    rows = [{"g": g, "a": rng.normal(), "b": rng.normal(), "y": rng.normal() + i}
            for i, g in enumerate("pqrs") for _ in range(12)]
    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    data = load_table(tmp_path / "d.csv", "g", "y")
    comp = compare(data, protocols.lecture(data), families=["pooled-ridge", "mtl-ridge"])
    page = comp._repr_html_()
    _scoped_only(page)
    assert "Multi-task comparison" in page and PNG not in page.encode()
    text = repr(comp)
    assert len(text) < 3000 and "d.csv" in text and "array(" not in text
    model_repr = repr(comp.results[0].model)
    assert len(model_repr) < 400 and "fitted on 4 tasks" in model_repr
    _scoped_only(comp.results[0].model._repr_html_())


def test_maps_show_over_their_pictures(tiny):
    """``heat.show(rgb)`` draws each map over its picture (resized to it), signed for LRP."""
    model, x = tiny
    rgb = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    for heat in (V.grad_cam(model, x), V.explain("lrp", model, x)):
        shown = heat.show(rgb)
        assert shown._repr_png_()[:4] == PNG and "shown over" in repr(shown)
    assert heat.show([rgb, rgb])._repr_png_()[:4] == PNG  # one picture per map
    from netscope.errors import NetscopeError

    with pytest.raises(NetscopeError, match="3 pictures for 2 map"):
        heat.show([rgb, rgb, rgb])
    bad = rgb.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(NetscopeError, match="picture 0 holds NaN"):
        heat.show(bad)


def test_a_shown_map_is_the_known_overlay_of_its_picture(tiny):
    """``show`` draws exactly overlay(picture, map): on a black picture a map that is 1 on
    the left half and 0 on the right gives alpha x jet(1) and alpha x jet(0) blocks."""
    import io

    from matplotlib import colormaps
    from PIL import Image

    model, x = tiny
    heat = V.grad_cam(model, x[:1])
    half = torch.zeros(1, *heat.maps.shape[1:])
    half[..., : half.shape[-1] // 2] = 1.0
    heat.maps = half
    black = np.zeros((64, 64, 3), np.float32)
    png = np.asarray(Image.open(io.BytesIO(heat.show(black)._repr_png_())).convert("RGB"))
    rgb = png.reshape(-1, 3).astype(int)
    jet = colormaps["jet"]

    def count(level: float) -> int:
        want = np.round(0.45 * np.array(jet(level)[:3]) * 255).astype(int)
        return int((np.abs(rgb - want).max(1) <= 3).sum())

    assert count(1.0) > 500 and count(0.0) > 500, (count(1.0), count(0.0))
