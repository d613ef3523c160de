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


def test_interventions_are_batched_and_counted():
    """All interventions of a layer run in one pass when the batch allows; one image per
    pass gives the same numbers in more passes."""
    x, model = pictures(), T.detector()
    got = class_circuit(model, x, 0, ["detect", "spread", "mix"], top=3)
    wide = validate(model, x, got, batch=64)
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
