"""The metric table: each metric is one entry (columns, settings, needs) and one function;
`vision evaluate`, its ranking, the report, the notebook view and the command line read it,
so a metric declared in a test appears in all of them."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from netscope.cli import _leaves, build_parser
from netscope.cli.method_options import given_settings
from netscope.errors import NetscopeError
from netscope.render.evaluation import header, meaning, text_report, write_evaluation
from netscope.vision.evaluation import EvalSettings, evaluate
from netscope.vision.methods.registry import Setting
from netscope.vision.metrics.choices import resolve_metrics
from netscope.vision.metrics.registry import METRICS, Column, Metric
from netscope.vision.metrics.scored import Scores
from netscope.vision.models.zoo import LoadedModel, Preprocess
from tests.vision.tiny import TinyGAP


def map_mass(inp, *, power: float) -> Scores:
    """A metric declared in a test: the mean of the map raised to ``power``."""
    return Scores({"map_mass": (inp.maps ** power).flatten(1).mean(1)})


ADDED = Metric("mass", "map mass", "tests.vision.test_metric_table:map_mass",
               (Column("map_mass", "map mass (lower)", "lower",
                       "mean of the map to a power: LOWER is better"),),
               (Setting("power", 1.0, "the power", cast=float, lo=0, hi=4),))


def _images(n=2):
    rng = np.random.default_rng(0)
    return [(f"img{i}", rng.random((12, 12, 3)).astype(np.float32)) for i in range(n)]


def test_a_metric_added_by_one_declaration_is_everywhere(monkeypatch, tmp_path):
    monkeypatch.setitem(METRICS, "mass", ADDED)
    assert "mass" in resolve_metrics("all")
    parser = next(p for p in _leaves(build_parser()) if p.prog.endswith("vision evaluate"))
    text = " ".join(parser.format_help().split())
    assert "--power POWER the power (default: 1; mass)" in text and "mass" in text
    args = parser.parse_args(["--metrics", "deletion,mass", "--power", "2"])
    assert given_settings(args, kind="metric") == {"power": 2.0}
    lm = LoadedModel("tiny", TinyGAP(dtype=torch.float32), Preprocess(8), None)
    settings = EvalSettings(metrics=("deletion", "mass"),
                            metric_settings={"steps": 3, "power": 2.0},
                            method_settings={"layer": "features.3"})
    ev = evaluate(lm, _images(), ["gradcam", "saliency"], settings)
    table = {r["method"]: r for r in ev.table()}
    for res in ev.results:  # the function ran with the given setting
        assert table[res.method]["map_mass"] == pytest.approx(float((res.maps ** 2).mean()))
        assert table[res.method]["rank_map_mass"] in (1, 2)  # ranked by it
    assert header(ev) == ["rank", "method", "deletion AUC (lower)", "map mass (lower)",
                          "s / image"]
    assert meaning(ev)["map_mass"] == "mean of the map to a power: LOWER is better"
    assert "map_mass" in meaning(ev)["rank"] or "map mass" in meaning(ev)["rank"]
    assert "map mass (lower)" in text_report(ev) and "map mass" in ev._repr_html_()
    write_evaluation(ev, tmp_path)
    assert "map_mass" in pd.read_csv(tmp_path / "per_image.csv").columns
    assert "map mass (lower)" in (tmp_path / "report.html").read_text()
    doc = json.loads((tmp_path / "evaluation.json").read_text())
    assert doc["metric_settings"]["mass"] == {"power": 2.0}


def test_metric_settings_are_checked_from_their_declaration():
    with pytest.raises(NetscopeError, match="steps must be a whole number >= 2"):
        METRICS["deletion"](None, steps=1)
    with pytest.raises(NetscopeError, match="no metric has a setting 'stepz'"):
        EvalSettings(metric_settings={"stepz": 3}).check()
    with pytest.raises(NetscopeError, match="unknown metric 'aopc'"):
        EvalSettings(metrics=("aopc",)).check()


def test_each_column_is_declared_once():
    seen = [c.name for m in METRICS.values() for c in m.columns]
    assert len(seen) == len(set(seen))
    for m in METRICS.values():
        for c in m.columns:
            assert c.better in ("higher", "lower", None) and c.meaning
            assert not (c.ranked and c.better is None), c.name
