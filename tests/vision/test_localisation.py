"""Localisation against object masks and the maps' complexity: known answers, Quantus 0.6
where it is installed, `vision evaluate --masks`, and the errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from netscope.cli import main
from netscope.errors import NetscopeError
from netscope.vision.evaluation import EvalSettings, evaluate
from netscope.vision.metrics.complexity import complexity_scores
from netscope.vision.metrics.localisation import localisation_scores
from netscope.vision.metrics.scored import MetricInput
from netscope.vision.models.masks import masks_for
from netscope.vision.models.zoo import LoadedModel, Preprocess
from tests.vision.tiny import TinyGAP


def _input(maps, masks=None, size=8):
    x = torch.zeros(maps.shape[0], 3, size, size, dtype=torch.float64)
    return MetricInput(None, x, maps.double(), None, masks=masks)


def _square(n=8, lo=2, hi=5):
    m = torch.zeros(1, n, n)
    m[0, lo:hi, lo:hi] = 1
    return m


def test_a_map_equal_to_the_mask_localises_perfectly():
    mask = _square()
    got = localisation_scores(_input(mask, mask)).values
    assert {k: float(v) for k, v in got.items()} == {
        "pointing_game": 1.0, "relevance_mass": 1.0, "relevance_rank": 1.0,
        "localisation_auc": 1.0}
    away = localisation_scores(_input(1 - mask, mask)).values
    assert float(away["relevance_mass"]) == 0 and float(away["localisation_auc"]) == 0
    assert float(away["pointing_game"]) == 0 and float(away["relevance_rank"]) == 0


def test_partial_overlap_by_hand():
    """A map of 1 on the mask's top row and on 3 pixels outside, 0 elsewhere: half its
    mass inside; the 9 most relevant pixels are the 6 ones and the first 3 zeros; the AUC
    counts every (inside, outside) pair, ties half."""
    mask = _square()
    a = torch.zeros(1, 8, 8)
    a[0, 2, 2:5] = 1  # inside
    a[0, 7, 0:3] = 1  # outside
    got = localisation_scores(_input(a, mask)).values
    assert float(got["relevance_mass"]) == pytest.approx(0.5)
    # ties broken by pixel order: the 6 ones first (flat index order), then zeros from
    # index 0 on: rows 0-1 are outside the mask, so 3 of the top 9 are inside
    assert float(got["relevance_rank"]) == pytest.approx(3 / 9)
    # positives: 3 scored 1, 6 scored 0; negatives: 3 scored 1, 52 scored 0
    auc = (3 * 52 + 0.5 * 3 * 3 + 0.5 * 6 * 52) / (9 * 55)
    assert float(got["localisation_auc"]) == pytest.approx(auc)
    assert float(got["pointing_game"]) == 1.0  # a maximum lies inside


def test_complexity_known_answers():
    constant = torch.ones(1, 8, 8)
    got = complexity_scores(_input(constant)).values
    assert float(got["sparseness"]) == pytest.approx(0.0, abs=1e-12)
    assert float(got["complexity"]) == pytest.approx(np.log(64), rel=1e-9)
    point = torch.zeros(1, 8, 8)
    point[0, 3, 3] = 1
    got = complexity_scores(_input(point)).values
    assert float(got["sparseness"]) == pytest.approx(63 / 64, abs=1e-5)
    assert float(got["complexity"]) == pytest.approx(0.0, abs=1e-9)
    zero = complexity_scores(_input(torch.zeros(1, 8, 8))).values
    assert float(zero["sparseness"]) == pytest.approx(0.0, abs=1e-9)
    assert float(zero["complexity"]) == 0.0


def test_equal_to_quantus_where_installed():
    quantus = pytest.importorskip("quantus", reason="Quantus is a peer, not a dependency")
    rng = np.random.default_rng(0)
    a = rng.random((4, 1, 16, 16)) ** 3  # no ties
    s = np.zeros((4, 1, 16, 16))
    for i in range(4):
        s[i, 0, 3 + i:9 + i, 2:10 + i] = 1
    x = np.zeros((4, 3, 16, 16))
    a /= a.reshape(4, -1).max(1)[:, None, None, None]  # as netscope's maps: max 1
    ours = localisation_scores(_input(torch.from_numpy(a[:, 0]), torch.from_numpy(s[:, 0]),
                                      16)).values
    ours.update(complexity_scores(_input(torch.from_numpy(a[:, 0]), size=16)).values)
    peers = {"pointing_game": quantus.PointingGame(), "relevance_mass":
             quantus.RelevanceMassAccuracy(), "relevance_rank": quantus.RelevanceRankAccuracy(),
             "localisation_auc": quantus.AUC(), "sparseness": quantus.Sparseness(),
             "complexity": quantus.Complexity()}
    for name, metric in peers.items():
        ref = metric(model=None, x_batch=x, y_batch=np.zeros(4, int), a_batch=a.copy(),
                     s_batch=s, device="cpu")
        np.testing.assert_allclose(ours[name].numpy(), np.asarray(ref, float), atol=1e-6,
                                   err_msg=name)


def _images(n=2, size=12):
    rng = np.random.default_rng(0)
    return [(f"img{i}", rng.random((size, size, 3)).astype(np.float32)) for i in range(n)]


def test_evaluate_ranks_by_localisation_where_masks_are_given():
    lm = LoadedModel("tiny", TinyGAP(dtype=torch.float32), Preprocess(8), None)
    settings = EvalSettings(metrics=("deletion", "localisation", "complexity"),
                            metric_settings={"steps": 3},
                            method_settings={"layer": "features.3"})
    masks = _square().repeat(2, 1, 1)
    ev = evaluate(lm, _images(), ["gradcam", "saliency", "random"], settings, masks=masks)
    row = ev.table()[0]
    assert {"rank_deletion_auc", "rank_relevance_mass", "rank_localisation_auc"} <= set(row)
    assert "rank_sparseness" not in row and row["sparseness"] is not None
    without = evaluate(lm, _images(), ["gradcam"], settings)
    assert "localisation" in without.not_run and without.table()[0]["relevance_mass"] is None
    with pytest.raises(NetscopeError, match=r"masks of shape \(1, 8, 8\) do not fit 2"):
        evaluate(lm, _images(), ["gradcam"], settings, masks=_square())
    empty = torch.zeros(2, 8, 8)
    with pytest.raises(NetscopeError, match="the mask of image 0 is empty"):
        evaluate(lm, _images(), ["gradcam"], settings, masks=empty)


def _write(path, array):
    Image.fromarray((np.asarray(array) * 255).astype(np.uint8)).save(path)


def test_masks_from_a_folder_and_their_errors(tmp_path):
    pre = Preprocess(8)
    images = _images(2, size=12)
    folder = tmp_path / "masks"
    folder.mkdir()
    whole = np.zeros((12, 12))
    whole[3:9, 3:9] = 1
    _write(folder / "img0.png", whole)
    with pytest.raises(NetscopeError, match=r"no mask for 1 of 2 image\(s\).*img1"):
        masks_for(images, folder, pre)
    _write(folder / "img1.png", np.zeros((10, 12)))
    with pytest.raises(NetscopeError, match="the mask is 12 x 10 pixels, its image 12 x 12"):
        masks_for(images, folder, pre)
    _write(folder / "img1.png", whole)
    got = masks_for(images, folder, pre)
    assert got.shape == (2, 8, 8) and got.sum() > 0


def test_cli_masks(tmp_path, capsys):
    chelsea = tmp_path / "masks"
    chelsea.mkdir()
    from netscope.vision.models.images import sample_image

    h, w = sample_image("chelsea").shape[:2]
    inside = np.zeros((h, w))
    inside[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 1
    _write(chelsea / "chelsea.png", inside)
    out = tmp_path / "ev"
    assert main(["vision", "evaluate", "chelsea", "--model", "tests.vision.tiny:tiny_fcn",
                 "--methods", "saliency,random", "--metrics", "deletion,localisation",
                 "--steps", "3", "--masks", str(chelsea), "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "relevance mass (higher)" in text and "pointing game" in text
    assert main(["vision", "evaluate", "chelsea", "--metrics", "localisation"]) == 2
    assert "--metrics localisation needs --masks DIR" in capsys.readouterr().err
