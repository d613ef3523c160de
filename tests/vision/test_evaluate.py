"""`vision evaluate` end to end on a tiny model and on the default one, its ranking rules,
what it writes, and its errors."""

import json

import numpy as np
import pytest
import torch

from netscope import vision as A
from netscope.cli import main
from netscope.errors import NetscopeError
from netscope.render.evaluation import (
    header,
    meaning,
    table_rows,
    text_report,
    write_evaluation,
)
from netscope.vision.evaluation import METHODS, EvalSettings, evaluate, resolve_methods
from netscope.vision.methods.registry import METHODS as REGISTERED
from netscope.vision.methods.registry import names
from netscope.vision.metrics.sanity import cascading_randomization
from netscope.vision.models.zoo import LoadedModel, Preprocess, load_model
from tests.vision.tiny import TinyGAP

ALL_METHODS, EVAL_METHODS = names("all"), tuple(REGISTERED)

FAST = EvalSettings(metric_settings=dict(steps=4, road_percentages=(50,),
                                         sanity_checkpoints=2),
                    method_settings=dict(top_k=3, steps=4, samples=2, window=4, stride=4,
                                         layer="features.3"))


def tiny_images(n=2):
    rng = np.random.default_rng(0)
    return [(f"img{i}", rng.random((12, 12, 3)).astype(np.float32)) for i in range(n)]


@pytest.fixture(scope="module")
def tiny_eval():
    lm = LoadedModel("tiny", TinyGAP(dtype=torch.float32), Preprocess(8), None)
    return evaluate(lm, tiny_images(), "all", FAST)


def test_every_method_is_scored_and_ranked(tiny_eval):
    assert list(METHODS) == list(EVAL_METHODS)
    table = tiny_eval.table()
    assert [r["rank"] for r in table] == list(range(1, len(ALL_METHODS) + 1))
    assert {r["method"] for r in table} == set(ALL_METHODS) == \
        {n for n in EVAL_METHODS if REGISTERED[n].in_all}
    for r in table:
        assert 0 <= r["deletion_auc"] <= 1 and 0 <= r["insertion_auc"] <= 1
    # the verdicts this seeded tiny model gets: Integrated Gradients' maps (x times the
    # mean gradient) and Input x Gradient's stay dominated by the input's own pattern once
    # every weight is randomized (Adebayo et al.'s finding for gradient x input); the rest
    # change
    verdicts = {r["method"]: r["sanity"] for r in table}
    assert verdicts.pop("random") == "not run"
    assert verdicts.pop("integrated-gradients") == verdicts.pop("input-x-gradient") == "FAILS"
    assert set(verdicts.values()) == {"passes"}, verdicts
    passing = [r["rank"] for r in table if r["sanity"] != "FAILS"]
    failing = [r["rank"] for r in table if r["sanity"] == "FAILS"]
    assert not failing or max(passing) < min(failing)  # failing methods come last
    assert next(r for r in table if r["method"] == "random")["sanity"] == "not run"


def test_ranks_follow_the_columns(tiny_eval):
    table = tiny_eval.table()
    best_deletion = min(table, key=lambda r: r["deletion_auc"])
    assert best_deletion["rank_deletion_auc"] == 1
    best_insertion = max(table, key=lambda r: r["insertion_auc"])
    assert best_insertion["rank_insertion_auc"] == 1


def test_outputs(tiny_eval, tmp_path):
    paths = write_evaluation(tiny_eval, tmp_path)
    assert {"evaluation.csv", "per_image.csv", "evaluation.json", "curves.png",
            "maps_img0.png", "report.html"} <= set(paths)
    doc = json.loads((tmp_path / "evaluation.json").read_text())
    assert len(doc["table"]) == len(ALL_METHODS)
    assert len(doc["curves"]["gradcam"]["deletion"]["scores"][0]) == FAST.steps + 1
    assert doc["metric_settings"]["road"] == {"road_percentages": [50]}
    assert len(doc["details"]["gradcam"]["sanity"]["spearman"]) == 2
    page = (tmp_path / "report.html").read_text()
    assert "LOWER is better" in page and "HIGHER is better" in page and "FAILS when" in page
    assert page.count("data:image/png;base64,") == 3
    text = text_report(tiny_eval)
    assert tiny_eval.verdict() in text and all(k in text for k in meaning(tiny_eval))
    # the files hold the numbers: the table's, and per image what averages to them
    import pandas as pd

    table = {r["method"]: r for r in tiny_eval.table()}
    csv = pd.read_csv(tmp_path / "evaluation.csv").set_index("method")
    per_image = pd.read_csv(tmp_path / "per_image.csv")
    assert len(per_image) == len(ALL_METHODS) * len(tiny_eval.names)
    for method, row in table.items():
        for col in ("deletion_auc", "insertion_auc"):
            assert csv.loc[method, col] == pytest.approx(row[col], rel=1e-6)
            mine = per_image[per_image["method"] == method][col]
            assert mine.mean() == pytest.approx(row[col], rel=1e-6), (method, col)
        assert doc["table"][[r["method"] for r in doc["table"]].index(method)]["rank"] == \
            row["rank"]


def test_method_names():
    assert resolve_methods("all") == list(ALL_METHODS)
    assert resolve_methods(["saliency", "gradcam", "saliency"]) == ["saliency", "gradcam"]
    with pytest.raises(NetscopeError, match="unknown method 'gradcamm'"):
        resolve_methods(["gradcamm"])


def test_randomization_changes_gradcam_on_the_default_model_and_not_the_model():
    lm = load_model()
    from netscope.vision.models.images import sample_image

    x = lm.preprocess.tensor(sample_image("chelsea"))
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    t = torch.tensor([285])
    check = cascading_randomization(lm.model, x, lambda m, xx, tt: A.grad_cam(m, xx, tt).maps,
                                    t, 2)
    assert check.passed and check.spearman[-1, 0] < 0.5
    assert check.stages[0] != check.stages[-1] and check.depth[-1] == check.groups
    assert all(torch.equal(before[k], v) for k, v in lm.model.state_dict().items())


def test_a_map_that_ignores_the_weights_fails_the_sanity_check():
    """Analytic ends of the cascading randomization: a "method" that draws the input's
    brightness whatever the weights keeps rank correlation 1 and FAILS; one that draws the
    first layer's response changes with the weights and passes."""
    model = TinyGAP(dtype=torch.float32).eval()
    x = torch.from_numpy(np.stack([img.transpose(2, 0, 1) for _, img in tiny_images()]))
    brightness = cascading_randomization(model, x, lambda m, xx, tt: xx.sum(1), [0, 0], 2)
    assert not brightness.passed and brightness.spearman[-1] == pytest.approx(1.0)
    first = next(mod for mod in model.modules() if isinstance(mod, torch.nn.Conv2d))
    name = next(n for n, mod in model.named_modules() if mod is first)
    response = cascading_randomization(
        model, x, lambda m, xx, tt: dict(m.named_modules())[name](xx).sum(1).abs(), [0, 0], 1)
    assert response.passed


def test_cli_evaluate(tmp_path, capsys):
    out = tmp_path / "ev"
    rc = main(["vision", "evaluate", "chelsea", "--methods", "gradcam,saliency,random",
               "--steps", "4", "--sanity-checkpoints", "1", "--out", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| rank | method" in text and "Egyptian cat" in text
    assert (out / "report.html").is_file() and (out / "netscope-run.json").is_file()


class NoLinearHead(torch.nn.Module):
    """Convolutions and a mean: no linear head, so CAM does not apply."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1),
                                            torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 3, padding=1))

    def forward(self, x):
        return self.features(x).mean((2, 3))


def test_methods_that_do_not_apply_are_skipped_under_all_only():
    lm = LoadedModel("nohead", NoLinearHead(), Preprocess(8), None)
    settings = EvalSettings(metrics=("deletion", "insertion", "road", "confidence"),
                            metric_settings=dict(steps=2, road_percentages=(50,)),
                            method_settings=dict(top_k=2, steps=2, samples=1, window=4,
                                                 stride=4, layer="features.0"))
    ev = evaluate(lm, tiny_images(1), "all", settings)
    assert "cam" in ev.skipped and "linear classification head" in ev.skipped["cam"]
    assert "cam" not in {r["method"] for r in ev.table()}
    with pytest.raises(NetscopeError, match="linear classification head"):
        evaluate(lm, tiny_images(1), ["cam"], settings)


def test_cli_skips_and_lists_what_does_not_apply(tmp_path, capsys):
    """A fully convolutional classifier (no nn.Linear) with the default --methods all: CAM is
    skipped and listed, everything else scored, exit 0 (it exited 2 when the command line
    expanded 'all' itself)."""
    out = tmp_path / "ev"
    rc = main(["vision", "evaluate", "chelsea", "--model", "tests.vision.tiny:tiny_fcn",
               "--steps", "2", "--metrics", "deletion", "--top-k", "2", "--out", str(out),
               "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "not applicable: cam: CAM needs a linear classification head" in text
    doc = json.loads((out / "evaluation.json").read_text())
    assert "larger than the image" in doc["skipped"]["occlusion"]  # 32 px window, 16 px image
    assert {r["method"] for r in doc["table"]} == set(ALL_METHODS) - {"cam", "occlusion"}


def test_equal_scores_share_a_rank(tiny_eval):
    table = {r["method"]: r for r in tiny_eval.table()}
    same = [m for m in ("gradcam", "xgradcam", "hirescam", "cam")
            if table[m]["deletion_auc"] == table["gradcam"]["deletion_auc"]]
    assert len(same) >= 2  # equal maps at a GAP head
    assert len({table[m]["mean_rank"] for m in same}) == 1


def test_chosen_metrics_only(tmp_path):
    from netscope.vision.evaluation import resolve_metrics

    assert resolve_metrics("all") == ("deletion", "insertion", "road", "confidence",
                                      "infidelity", "localisation", "complexity", "sanity")
    assert resolve_metrics(["sanity", "road"]) == ("road", "sanity")
    with pytest.raises(NetscopeError, match="unknown metric 'aopc'"):
        resolve_metrics(["deletion", "aopc"])
    lm = LoadedModel("tiny", TinyGAP(dtype=torch.float32), Preprocess(8), None)
    settings = EvalSettings(metrics=("road",), metric_settings={"road_percentages": (50,)},
                            method_settings={"layer": "features.3"})
    ev = evaluate(lm, tiny_images(), ["gradcam", "random"], settings)
    row = ev.table()[0]
    assert row["deletion_auc"] is None and row["road_gap"] is not None
    assert row["sanity"] == "not run" and row["rank_road_gap"] in (1, 2)
    paths = write_evaluation(ev, tmp_path)
    assert "curves.png" not in paths and header(ev) == ["rank", "method", "ROAD gap (higher)",
                                                        "s / image"]


def test_spread_over_images_is_shown(tiny_eval):
    row = next(r for r in tiny_eval.table() if r["method"] == "gradcam")
    per = [res for res in tiny_eval.results if res.method == "gradcam"][0]
    assert row["deletion_auc_sd"] == pytest.approx(float(per.values("deletion_auc").std()))
    cells = next(c for c in table_rows(tiny_eval) if c[1] == "gradcam")
    assert " ± " in cells[2]


def test_constant_maps_are_uninformative_and_never_ranked():
    """Grad-CAM at a 1x1 pooled grid is the same value everywhere: whatever its scores and
    sanity verdict, it is reported as uninformative and placed after every ranked method;
    on a 1x1 image every method is, and no method is called most faithful."""
    from dataclasses import replace

    lm = LoadedModel("tiny", TinyGAP(dtype=torch.float32), Preprocess(8), None)
    pool = replace(FAST, method_settings={**FAST.method_settings, "layer": "pool"})
    ev = evaluate(lm, tiny_images(), ["gradcam", "saliency"], pool)
    table = ev.table()
    assert [(r["method"], r["rank"]) for r in table] == [("saliency", 1), ("gradcam", None)]
    assert table[1]["sanity"] == "uninformative (constant maps)"
    assert table[1]["constant_maps"] == 2 and table[0]["constant_maps"] == 0
    assert table_rows(ev)[1][0] == "-" and ev.best()["method"] == "saliency"
    one = LoadedModel("tiny", TinyGAP(dtype=torch.float32), Preprocess(1), None)
    ev = evaluate(one, tiny_images(1), ["gradcam", "saliency", "random"],
                  replace(FAST, method_settings={**FAST.method_settings, "layer": None}))
    assert ev.best() is None and all(r["rank"] is None for r in ev.table())
    assert "no method gave an informative map here (every map is constant)" in text_report(ev)


def test_lrp_keeps_its_sign_in_the_evaluation_pictures():
    """The ranking uses LRP's positive map; the pictures draw its signed relevance."""
    lm = LoadedModel("tiny", TinyGAP(dtype=torch.float32), Preprocess(8), None)
    ev = evaluate(lm, tiny_images(), ["lrp", "gradcam"], FAST)
    lrp_result = next(r for r in ev.results if r.method == "lrp")
    cam = next(r for r in ev.results if r.method == "gradcam")
    assert lrp_result.signed is not None and cam.signed is None
    assert float(lrp_result.signed.min()) < 0 <= float(lrp_result.maps.min())
    assert float(lrp_result.signed.abs().amax()) == pytest.approx(1.0)
    from netscope.render.evaluation import maps_png

    assert maps_png(ev, 0)[:4] == b"\x89PNG"


def test_random_maps_are_a_floor_never_the_most_faithful_method():
    """The course notebook once ended "Most faithful here: random": a baseline is never the
    answer; a method is named only when it ranks ahead of the random maps, and otherwise
    the verdict says none did, on how many images and steps."""
    from dataclasses import replace

    lm = LoadedModel("tiny", TinyGAP(dtype=torch.float32), Preprocess(8), None)
    ev = evaluate(lm, tiny_images(), ["gradcam", "saliency", "random"], FAST)
    table = ev.table()
    floor = ev.floor()
    assert floor["method"] == "random"
    top = ev.best()
    if top is not None:
        assert top["method"] != "random" and top["mean_rank"] < floor["mean_rank"]
        assert ev.verdict().startswith(f"most faithful here: {top['method']}")
    # when the random maps rank first, no method is named
    rows = [dict(r, mean_rank=1.0 if r["method"] == "random" else 2.0) for r in table]
    forced = replace(ev)
    forced.table = lambda: sorted(rows, key=lambda r: r["mean_rank"])
    assert forced.best() is None
    assert forced.verdict().startswith("no method did better than random maps here (2 "
                                       "image(s), 4 steps)")


def test_evaluation_says_how_far_it_is_and_how_long_is_left():
    said = []
    lm = LoadedModel("tiny", TinyGAP(dtype=torch.float32), Preprocess(8), None)
    evaluate(lm, tiny_images(1), ["gradcam", "saliency", "random"], FAST, progress=said.append)
    starts = [s for s in said if ": maps (" in s]
    assert [s.split(" (")[1].split(" methods")[0] for s in starts] == ["1/3", "2/3", "3/3"]
    assert starts[0].endswith("methods)") and starts[1].endswith(" left)")
