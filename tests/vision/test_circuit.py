"""Circuits of a class: a hand-built detector's circuit is exactly its built edges, and every
node and edge it claims is confirmed by intervention (removed, set to its mean, patched from
another image), all of a layer's interventions in one batched forward pass."""

import numpy as np
import pytest
import torch

from netscope.errors import NetscopeError
from netscope.vision.concepts.circuit import class_circuit
from netscope.vision.concepts.circuit_checks import validate
from tests.vision import tiny_units as T


def pictures():
    rng = np.random.default_rng(0)
    images = [T.red_square(rng, 10, 12), T.edge(rng, 14), T.red_square(rng, 20, 8),
              T.edge(rng, 20)]
    return torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2)).float()


def test_the_circuit_of_a_hand_built_detector_finds_exactly_the_built_edges():
    """detect -> spread copies each channel (centre tap), mix adds spread 0 and 1 into unit 0
    and passes spread 2 as unit 1; class 0 reads pooled mix 0. Its circuit: detect c ->
    spread c for c = 0, 1 and spread 0, 1 -> mix 0, nothing else; removing a node changes
    the score by exactly its contribution (the network is linear past the ReLUs)."""
    x, model = pictures(), T.detector()
    got = class_circuit(model, x, 0, ["detect", "spread", "mix"], top=3)
    edges = {(a, i, b, j) for a, i, b, j, _ in got.edges}
    assert edges == {("detect", 0, "spread", 0), ("detect", 1, "spread", 1),
                     ("spread", 0, "mix", 0), ("spread", 1, "mix", 0)}
    assert [e.linear for e in got.expanded.values()] == [False, False]  # ReLUs between
    assert all(e["expanded_weight"] is None for e in got.as_dict()["edges"])
    checks = validate(model, x, got)
    for node in checks["nodes"]:
        assert node["measured"] == pytest.approx(node["predicted"], abs=1e-5), node
    for node, name in zip(checks["nodes"], [f"{n}:{int(j)}" for n in got.layers
                                            for j in got.nodes[n]], strict=True):
        layer, j = name.split(":")
        assert node["node"] == name
        assert node["predicted"] == pytest.approx(-got.contribution[layer][int(j)])
    assert checks["wrong_sign"] == [] and checks["edges_wrong_sign"] == []
    assert checks["completeness"]["mix"] == pytest.approx(1.0)
    assert len(checks["edges"]) == 4
    for edge in checks["edges"]:  # each edge's claim, checked by removing its source
        assert edge["measured"] == pytest.approx(edge["predicted"], abs=1e-5), edge
        assert edge["predicted"] == pytest.approx(-next(
            w for a, i, b, j, w in got.edges if f"{a}:{i} -> {b}:{j}" == edge["edge"]))


def linear_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(4, 3, 1),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(3, 2)).eval()


@pytest.mark.parametrize("ablation", ["zero", "mean", "patch"])
def test_every_replacement_moves_scores_and_contributions_as_predicted(ablation):
    """In a network with no nonlinearity the first-order predictions are exact, image by
    image: a node replaced (removed, set to the reference images' mean, patched from the
    previous image) moves the class score, and each later node's contribution, by exactly
    what the attributions say."""
    x, model = pictures(), linear_net()
    got = class_circuit(model, x, 1, ["0", "1"], top=4, share=0.0)
    source = x[:2] if ablation == "mean" else None  # the mean of a square and an edge
    checks = validate(model, x, got, ablation=ablation, source=source)
    assert checks["ablation"] == ablation
    assert len(checks["nodes"]) == 4 + 3 and len(checks["edges"]) == 4 * 3
    for row in checks["nodes"] + checks["edges"]:
        each = row["per_image"]
        assert np.abs(each["measured"]).max() > 1e-5  # the replacement changes something
        assert each["measured"] == pytest.approx(each["predicted"], rel=1e-3, abs=1e-6), row
    assert checks["correlation"] == pytest.approx(1.0, abs=1e-6)
    assert checks["edge_correlation"] == pytest.approx(1.0, abs=1e-6)
    assert checks["completeness"]["1"] == pytest.approx(1.0)  # every unit of "1" is kept
    # a 1x1 convolution joins the layers: each edge's expanded weight is its weight
    w = model[1].weight.detach()[:, :, 0, 0]
    doc = got.as_dict()
    assert doc["linear_paths"] == [{"from_layer": "0", "to_layer": "1", "linear": True,
                                    "affine_gap": pytest.approx(0, abs=1e-5)}]
    for e in doc["edges"]:
        assert e["expanded_weight"] == pytest.approx(float(w[e["to"], e["from"]]), rel=1e-5)


def test_interventions_are_batched_and_counted():
    """All interventions of a layer run in one pass when the batch allows; one image per
    pass gives the same numbers in more passes."""
    x, model = pictures(), T.detector()
    got = class_circuit(model, x, 0, ["detect", "spread", "mix"], top=3)
    wide = validate(model, x, got, batch=64)  # 16 interventions of 4 images per pass
    # 3 + 3 + 2 nodes (mix has 2 units; every unit is in the graph, so no "rest" to
    # change) = 8 interventions of 4 images in 3 passes, + every layer's rest at once +
    # the base and gradient passes
    assert wide["forward_passes"] == 3 + 1 + 2
    assert wide["images_forwarded"] == 32 + 4 + 8
    narrow = validate(model, x, got, batch=4)
    assert narrow["forward_passes"] == 8 + 1 + 2
    for a, b in zip(wide["nodes"] + wide["edges"], narrow["nodes"] + narrow["edges"],
                    strict=True):
        assert a["measured"] == pytest.approx(b["measured"], abs=1e-5)
    assert wide["completeness"] == pytest.approx(narrow["completeness"])
    assert set(wide["completeness"]) == {"detect", "spread", "mix", "all"}


def test_bad_ablations_are_refused():
    x, model = pictures(), T.detector()
    got = class_circuit(model, x, 0, ["mix"], top=1)
    with pytest.raises(NetscopeError, match="ablation 'nope' is not one of zero, mean"):
        validate(model, x, got, ablation="nope")
    with pytest.raises(NetscopeError, match="at least two images"):
        validate(model, x[:1], class_circuit(model, x[:1], 0, ["mix"], top=1),
                 ablation="patch")
    with pytest.raises(NetscopeError, match="reference images are .* give them at one size"):
        validate(model, x, got, ablation="patch", source=x[:, :, :16, :16])


def _save(root, images):
    from PIL import Image

    root.mkdir(exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray((img.transpose(1, 2, 0) * 255).round().astype(np.uint8)) \
            .save(root / f"p{i}.png")
    return sorted(str(p) for p in root.iterdir())


def test_cli_patches_nodes_from_reference_images(tmp_path, capsys):
    """`--ablation patch --reference` takes each node from the reference images: patching
    the square images' ``mix`` units from edge images moves class 0 (square + edge) by what
    the attributions predict; the command says how it checked and what it cost."""
    import json

    from netscope.cli import main

    x = pictures().numpy()
    squares, edges = _save(tmp_path / "sq", x[[0, 2]]), _save(tmp_path / "ed", x[[1, 3]])
    assert main(["vision", "circuit", *squares, "--model", "tests.vision.tiny_units:detector",
                 "--layers", "spread,mix", "--class", "0", "--top", "3", "--validate",
                 "--ablation", "patch", "--reference", *edges, "--out",
                 str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "changing each node (patch)" in out and "forward passes" in out
    checks = json.loads((tmp_path / "c" / "circuit.json").read_text())["checks"]
    assert checks["ablation"] == "patch"
    mix = [n for n in checks["nodes"] if n["node"].startswith("mix:")]
    for node in mix:  # linear after mix: exact
        assert node["measured"] == pytest.approx(node["predicted"], abs=1e-4)
    assert max(abs(n["measured"]) for n in mix) > 0.1


def test_cli_refuses_an_ablation_without_validate(tmp_path, capsys):
    from netscope.cli import main

    assert main(["vision", "circuit", "chelsea", "--layers", "a", "--ablation", "mean",
                 "--out", str(tmp_path / "c")]) == 2
    assert "add --validate" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_expanded_weights_are_the_product_of_the_kernels_on_a_linear_path():
    """A 3x3 convolution then a 1x1 one: the expanded weight from unit i of the first
    layer's output to unit j of the last is sum_m W2[j, m] W1[m, i] (3x3), the same at any
    input; across a ReLU the path is not linear and nothing is claimed."""
    from netscope.vision.concepts.expanded import expanded_weights

    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(4, 5, 3,
                              padding=1), torch.nn.BatchNorm2d(5), torch.nn.Conv2d(5, 2, 1),
                              torch.nn.ReLU(), torch.nn.Conv2d(2, 2, 1)).eval()
    net[2].running_mean.uniform_(-1, 1)
    net[2].running_var.uniform_(0.5, 2)
    x = pictures()
    got = expanded_weights(net, x, "0", "3", [0, 1])
    assert got.linear and got.gap < 1e-5
    w1, w2 = net[1].weight.detach(), net[3].weight.detach()[:, :, 0, 0]
    bn = (net[2].weight / torch.sqrt(net[2].running_var + net[2].eps)).detach()
    want = torch.einsum("jm,m,mihw->jihw", w2, bn, w1).numpy()
    assert got.kernels.shape == (2, 4, 3, 3)
    np.testing.assert_allclose(got.kernels, want, rtol=1e-4, atol=1e-6)
    assert got.weight(1, 2) == pytest.approx(float(want[1, 2].sum()), rel=1e-4)
    across = expanded_weights(net, x, "0", "5", [0, 1])
    assert not across.linear and across.kernels is None and across.gap > 1e-3


def test_the_pictures_and_page_show_expanded_weights_and_checks():
    from netscope.render.circuit import circuit_html, expanded_png

    x, model = pictures(), linear_net()
    got = class_circuit(model, x, 1, ["0", "1"], top=2, share=0.0)
    validate(model, x, got)
    png = expanded_png(got)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    page = circuit_html(got, "class 1", {("0", int(got.nodes["0"][0])): ("u.html", None)})
    e = got.as_dict()["edges"][0]
    assert f"<td>{e['expanded_weight']:+.4g}</td>" in page
    assert "0 -> 1: linear (expanded weights shown)" in page
    assert page.count("<a href='u.html'>") == 2  # the node in the graph and in the table
    nonlinear = class_circuit(T.detector(), x, 0, ["spread", "mix"], top=2)
    assert expanded_png(nonlinear) is None


def test_an_lrp_circuit_equals_conditional_relevance_and_is_checked_by_removal():
    """Nodes: the LRP relevance reaching each unit; edges: the relevance reaching an earlier
    unit when only the later one passes relevance (CRP). On the detector (ReLU network,
    epsilon-plus) relevance is conserved: the nodes of ``mix`` carry the class score; the
    edges into a node sum to its relevance; removing a node of the linear part changes the
    score by minus its relevance."""
    from netscope.vision.methods.relevance.propagate import lrp

    x, model = pictures(), T.detector()
    got = class_circuit(model, x, 0, ["spread", "mix"], top=3, share=0.0, relevance="lrp")
    assert got.relevance == "lrp" and got.as_dict()["relevance"] == "lrp"
    whole = lrp(model, x, [0] * 4, units=["spread", "mix"])
    np.testing.assert_allclose(got.contribution["mix"], whole.extras["unit_relevance"]["mix"]
                               .sum((2, 3)).mean(0).numpy(), rtol=1e-5)
    assert got.contribution["mix"].sum() == pytest.approx(got.score, rel=1e-3)  # conserved
    one = lrp(model, x, [0] * 4, through={"mix": [0]}, units="spread").extras["units"]
    for a, i, b, j, w in got.edges:
        assert (a, b, j) == ("spread", "mix", 0) or abs(w) < 1e-9
        if j == 0:
            assert w == pytest.approx(float(one[:, i].mean()), rel=1e-5)
    into = sum(w for *_, j, w in got.edges if j == 0)
    assert into == pytest.approx(got.contribution["mix"][0], rel=1e-3)
    checks = validate(model, x, got)
    for node in checks["nodes"]:
        if node["node"].startswith("mix:"):
            assert node["measured"] == pytest.approx(node["predicted"], abs=1e-4)
    with pytest.raises(NetscopeError, match="LRP circuit claims what removing a node"):
        validate(model, x, got, ablation="mean")


@pytest.mark.parametrize("relevance", ["gradient", "lrp"])
def test_a_vision_transformers_circuit_counts_its_class_token(relevance):
    """A ViT classifies from its class token, which no patch grid holds: circuits sum and
    remove over every token, so the last block's units carry the score (they would carry
    nothing on the patch grid alone) and removing them moves it as claimed."""
    from tests.vision.tiny_transformers import quadrant_images, tiny_vit

    model = tiny_vit().eval()
    x, _, _ = quadrant_images(4, 0)
    got = class_circuit(model, x, 0, ["blocks.0", "blocks.1"], top=3, relevance=relevance)
    assert np.abs(got.contribution["blocks.1"]).max() > 1e-3
    assert len(got.edges) >= 1
    checks = validate(model, x, got)
    assert checks["correlation"] > 0.95, checks["correlation"]


def test_concept_relevance_equals_held_in_zennit_crp_numbers():
    """zennit-crp 0.6's CondAttribution (EpsilonPlus) on a VGG-style network with formula
    weights, held in tests/vision/data/crp_reference.json (benchmarks/peer_crp.py
    --write-reference): the conditional heat maps and the relevance reaching each earlier
    layer under the condition (what the LRP circuit's edges are) equal netscope's."""
    import json
    from pathlib import Path

    from benchmarks.peer_crp import held_in, held_in_input
    from netscope.vision.methods.relevance.propagate import lrp

    cases = json.loads((Path(__file__).parent / "data" / "crp_reference.json").read_text())
    model, x = held_in(), held_in_input()
    for case in cases:
        got = lrp(model, x, [case["target"]] * 2, through={case["layer"]: [case["channel"]]},
                  units=["0", "2", "5"])
        heat = np.array(case["heatmap"])
        assert np.abs(heat).max() > 1e-4
        np.testing.assert_allclose(got.attributions.sum(1).numpy(), heat, rtol=1e-4,
                                   atol=1e-6 * np.abs(heat).max())
        below = [k for k in ("0", "2", "5") if int(k) < int(case["layer"])]
        for layer in below:  # what reaches the earlier layers under the condition
            want = case["relevance"][layer]
            mine = got.extras["unit_relevance"][layer].sum((2, 3)).numpy()
            np.testing.assert_allclose(mine, want, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("extra, said", [
    (["--atlas", "{tmp}"], "not an atlas folder (no index.html and atlas-run.json)"),
    (["--validate", "--ablation", "patch", "--reference", "{tmp}/none.png"],
     "none.png: file not found"),
    (["--validate", "--ablation", "nope"], "invalid choice: 'nope'"),
])
def test_cli_circuit_refuses_bad_input_in_one_line(tmp_path, capsys, extra, said):
    from netscope.cli import main

    argv = ["vision", "circuit", "chelsea", "--model", "tests.vision.tiny_units:detector",
            "--layers", "mix", "--out", str(tmp_path / "c"),
            *[a.format(tmp=tmp_path) for a in extra]]
    try:
        rc = main(argv)
    except SystemExit as stop:  # argparse
        rc = stop.code
    assert rc == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err
    assert not (tmp_path / "c").exists()
