"""Dictionaries of a layer's features: known features in superposition are recovered, NMF
equals scikit-learn's multiplicative updates, a killed run resumes to the same dictionary,
saved dictionaries load safely and refuse another layer, and the command's outputs."""

import re

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from netscope.cli import main
from netscope.errors import NetscopeError
from netscope.vision.concepts.dictionaries import TopKSAE
from netscope.vision.concepts.learn import LearnSettings, learn, nmf_iteration
from netscope.vision.concepts.quality import features_per_channel, quality
from netscope.vision.concepts.saved import load_dictionary, save_dictionary
from tests.vision import tiny_units as T

FEATURES = np.array([[1.0, 1, 0, 0], [0, 1, 1, 0]]) / np.sqrt(2)  # share channel 1


def superposed(n=1500, seed=0):
    """Two sparse non-negative features that share channel 1, plus a little noise."""
    rng = np.random.default_rng(seed)
    a = rng.exponential(1.0, (n, 2)) * (rng.uniform(size=(n, 2)) < 0.4)
    return (a @ FEATURES + 0.01 * np.abs(rng.normal(size=(n, 4)))).astype(np.float32)


def recovered(atoms: np.ndarray) -> np.ndarray:
    unit = atoms / np.linalg.norm(atoms, axis=1, keepdims=True)
    return np.abs(unit @ FEATURES.T).max(0)  # each true feature's best atom


@pytest.mark.parametrize("method, features, epochs", [("nmf", 2, 200), ("topk-sae", 4, 20),
                                                       ("archetypal-sae", 4, 20)])
def test_features_in_superposition_are_recovered(method, features, epochs):
    X = superposed()
    got = learn(X, LearnSettings(method, features, top_k=1, epochs=epochs, lr=1e-2))
    assert (recovered(got.model.atoms().detach().numpy()) > 0.95).all()
    q = quality(got, X)
    assert q.explained_variance > 0.9
    if method == "nmf":  # the shared channel serves two features, the others one
        assert q.features_per_channel[1] > 1.8
        assert q.features_per_channel[0] < 1.2 and q.features_per_channel[2] < 1.2
        assert q.features_per_channel[3] == 0  # noise only: unused


def test_nmf_equals_scikit_learn_multiplicative_updates():
    from sklearn.decomposition import NMF

    rng = np.random.default_rng(1)
    X = np.abs(rng.normal(size=(300, 6)))
    W0, H0 = np.abs(rng.normal(size=(300, 3))), np.abs(rng.normal(size=(3, 6)))
    ref = NMF(3, solver="mu", init="custom", max_iter=25, tol=0)
    W = ref.fit_transform(X, W=W0.copy(), H=H0.copy())
    D, Z = torch.from_numpy(H0.copy()), torch.from_numpy(W0.copy())
    for _ in range(25):
        D, Z, _ = nmf_iteration(X, D, Z)
    np.testing.assert_allclose(D.numpy(), ref.components_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(Z.numpy(), W, rtol=1e-9, atol=1e-12)


def test_top_k_keeps_k_codes_and_atoms_stay_unit():
    torch.manual_seed(0)
    sae = TopKSAE(5, 8, top_k=3).train()
    x = torch.randn(10, 5)
    _, z, _ = sae(x)
    assert ((z > 0).sum(1) <= 3).all() and (z >= 0).all()
    np.testing.assert_allclose(sae.atoms().detach().norm(dim=1).numpy(), 1.0, atol=1e-6)


def test_features_per_channel_is_the_effective_number():
    atoms = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    got = features_per_channel(atoms, np.array([1.0, 1.0, 1.0]))
    np.testing.assert_allclose(got, [1.0, 3.0, 1.0])  # channel 1 split three ways


@pytest.mark.parametrize("method", ["topk-sae", "nmf"])
def test_a_killed_run_resumes_to_the_same_dictionary(tmp_path, method):
    X = superposed(600)
    s = LearnSettings(method, 3, top_k=1, epochs=6, lr=1e-2, batch_size=32)
    whole = learn(X, s)

    def stop(line):
        if "/6" in line and line.split("/")[0].endswith(" 4"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        learn(X, s, tmp_path / "ck.pt", stop)
    said = []
    again = learn(X, s, tmp_path / "ck.pt", said.append)
    assert any("resumed at" in line and " 4 of 6" in line for line in said)
    np.testing.assert_allclose(again.model.atoms().detach().numpy(),
                               whole.model.atoms().detach().numpy(), atol=1e-6)
    assert again.losses == pytest.approx(whole.losses, rel=1e-6)


def test_saved_dictionaries_load_safely_and_refuse_another_layer(tmp_path):
    X = superposed(400)
    s = LearnSettings("batchtopk-sae", 4, top_k=1, epochs=3, lr=1e-2)
    got = learn(X, s)
    save_dictionary(tmp_path / "d", got, s, "detector", "mix")
    back, meta = load_dictionary(tmp_path / "d", "detector", "mix")
    x = torch.from_numpy(X[:20])
    torch.testing.assert_close(back.encode(x), got.encode(x))
    assert meta["method"] == "batchtopk-sae" and meta["features"] == 4
    with pytest.raises(NetscopeError, match="a dictionary of layer 'mix', not 'detect'"):
        load_dictionary(tmp_path / "d", "detector", "detect")
    with pytest.raises(NetscopeError, match="not a dictionary netscope wrote"):
        load_dictionary(tmp_path)


def test_bad_settings_are_refused():
    X = superposed(50)
    with pytest.raises(NetscopeError, match="--features 80 is more than the 50"):
        learn(X, LearnSettings("topk-sae", 80))
    with pytest.raises(NetscopeError, match="nmf needs non-negative activations"):
        learn(X - 1, LearnSettings("nmf", 2))
    with pytest.raises(NetscopeError, match="top-k must be from 1 to the number"):
        learn(X, LearnSettings("topk-sae", 4, top_k=9))
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(NetscopeError, match="NaN or infinity"):
        learn(bad, LearnSettings("topk-sae", 4))


MODEL = "tests.vision.tiny_units:detector"


@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    root = tmp_path_factory.mktemp("squares") / "images"
    root.mkdir()
    rng = np.random.default_rng(0)
    pictures = [T.red_square(rng, 8 + 3 * i, 10 + 2 * i) for i in range(6)]
    pictures += [T.edge(rng, 8 + 3 * i) for i in range(6)]
    for i, img in enumerate(pictures):
        Image.fromarray((img * 255).round().astype(np.uint8)).save(root / f"p{i}.png")
    return root


@pytest.fixture(scope="module")
def mix_nmf(squares, tmp_path_factory):
    """An NMF dictionary of the detector's ``mix`` (two features) made by the command, and
    the index of its edge feature (unit 0 only; the other is the square feature)."""
    out = tmp_path_factory.mktemp("mix") / "d"
    assert main(["vision", "dictionary", str(squares), "--model", MODEL, "--layer", "mix",
                 "--method", "nmf", "--features", "2", "--epochs", "300", "--positions", "0",
                 "--workers", "0", "--quiet", "--out", str(out)]) == 0
    learned, _ = load_dictionary(out)
    atoms = learned.model.atoms().numpy()
    return out, int(np.argmax(atoms[:, 0] / np.linalg.norm(atoms, axis=1)))


def test_cli_dictionary_of_a_polysemantic_channel(squares, tmp_path, capsys):
    """The detector's ``mix`` unit 0 adds the square and edge detectors, unit 1 is the
    square alone: NMF finds the edge feature (unit 0 only) and a square feature (mostly
    unit 1: NMF's atoms may lie outside the data's cone, where squares give both units),
    and the channels table shows unit 0 serving two features, unit 1 one."""
    out = tmp_path / "d"
    args = ["vision", "dictionary", str(squares), "--model", "tests.vision.tiny_units:detector",
            "--layer", "mix", "--method", "nmf", "--features", "2", "--epochs", "300",
            "--positions", "0", "--workers", "0", "--quiet", "--out", str(out)]
    assert main(args) == 0
    said = capsys.readouterr().out
    assert "from 12 images; nmf, 2 features: explained variance" in said
    learned, meta = load_dictionary(out, "tests.vision.tiny_units:detector", "mix")
    atoms = learned.model.atoms().numpy()
    unit = atoms / np.linalg.norm(atoms, axis=1, keepdims=True)
    edge = np.abs(unit[:, 0]).argmax()
    assert unit[edge, 0] > 0.99  # (1, 0): the edge feature lives on unit 0 only
    assert unit[1 - edge, 1] > unit[1 - edge, 0]  # the square feature leans on unit 1
    channels = pd.read_csv(out / "channels.csv")
    assert channels.features_per_channel[0] > 1.5 > channels.features_per_channel[1]
    assert (out / "summary.png").stat().st_size > 10_000
    assert meta["quality"]["explained_variance"] > 0.95
    # the same command again reuses the samples and the finished learning
    assert main(args) == 0
    again, _ = load_dictionary(out)
    np.testing.assert_allclose(again.model.atoms().numpy(), atoms, atol=1e-6)


def test_jansen_total_indices_of_a_known_function():
    """f = m0 + 2 m1 with masks uniform on [0, 1): total indices 1/5 and 4/5, and 0 for an
    input f does not read."""
    from netscope.vision.concepts.craft import halton_design, jansen_total

    d = 512
    masks = halton_design(3, d)
    f = masks[:, 0] + 2 * masks[:, 1]
    got = jansen_total(f, d, 3)
    np.testing.assert_allclose(got, [0.2, 0.8, 0.0], atol=0.03)
    assert got[2] == 0.0


class TwoChannelNet(torch.nn.Module):
    """A 1x1 convolution copies two image channels into the layer ``mix``; the class
    scores read channel 0 only (class 0) or channel 1 only (class 1), after pooling."""

    def __init__(self):
        super().__init__()
        self.mix = torch.nn.Conv2d(3, 2, 1, bias=False)
        self.head = torch.nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.mix.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).view(2, 3, 1, 1))
            self.head.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))

    def forward(self, x):
        return self.head(self.mix(x).mean((2, 3)))


def test_craft_ranks_the_feature_that_drives_the_class_first():
    from netscope.vision.concepts.craft import class_importance
    from netscope.vision.concepts.dictionaries import NMF
    from netscope.vision.concepts.learn import Learned

    model = TwoChannelNet().eval()
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0)) + 0.1
    learned = Learned(NMF(torch.eye(2)), 1.0, [])  # features = the two channels
    got = class_importance(model, "mix", learned, x, target=0, designs=64)
    assert got.ranked()[0] == 0
    assert got.importance[1] == 0.0 and got.importance[0] > 0.9
    np.testing.assert_allclose(got.codes[:, 0], x[:, 0].numpy(), rtol=1e-5)  # the maps
    other = class_importance(model, "mix", learned, x, target=1, designs=64)
    assert other.ranked()[0] == 1 and other.importance[0] == 0.0
    with pytest.raises(NetscopeError, match="class 5 is not one of the model's 2 classes"):
        class_importance(model, "mix", learned, x, target=5)
    wider = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.Flatten(),
                                torch.nn.LazyLinear(2))
    wider(x)
    with pytest.raises(NetscopeError, match="dictionary has 2 channels but layer 0 has 4"):
        class_importance(wider, "0", learned, x, target=0)


def test_cli_craft_ranks_the_square_feature_for_the_square_class(squares, mix_nmf, tmp_path,
                                                                  capsys):
    """The detector's class 1 reads ``mix`` unit 1, the square detector alone: of an NMF
    dictionary's two features (edge: unit 0 only; square) the square one ranks first, and
    the edge feature's index is 0 (masking it cannot move that score)."""
    out, edge = mix_nmf
    model = MODEL
    images = [str(p) for p in sorted(squares.glob("p[0-2].png"))]
    assert main(["vision", "craft", *images, "--model", model, "--dictionary", str(out),
                 "--class", "1", "--designs", "16", "--out", str(tmp_path / "c")]) == 0
    table = pd.read_csv(tmp_path / "c" / "importance.csv")
    assert table.feature[0] == 1 - edge
    assert table.set_index("feature").importance[edge] < 0.01
    effects = table.set_index("feature").ablation_effect  # the check by intervention:
    assert effects[1 - edge] < -1 and abs(effects[edge]) < 0.05  # square carries it
    assert (tmp_path / "c" / "craft.png").stat().st_size > 5000
    assert main(["vision", "craft", *images, "--model", "efficientnet-lite0", "--dictionary",
                 str(out), "--out", str(tmp_path / "e")]) == 2
    assert "a dictionary of model 'tests.vision.tiny_units:detector'" in capsys.readouterr().err


def test_ablating_and_patching_a_feature_change_the_score_by_the_analytic_amount():
    """TwoChannelNet's class 0 is 2 x the mean of channel 0 (feature 0 of an identity
    dictionary): removing feature 0 takes 2 mean(x0) off it and leaves class 1 alone;
    setting it to a mean code c makes it 2c; patching it from other images gives theirs."""
    from netscope.vision.concepts.dictionaries import NMF
    from netscope.vision.concepts.intervene import ablate, patch
    from netscope.vision.concepts.learn import Learned

    model = TwoChannelNet().eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 6, 6, generator=g) + 0.1
    other = torch.rand(4, 3, 6, 6, generator=g) + 0.1
    learned = Learned(NMF(torch.eye(2)), 1.0, [])
    got = ablate(model, "mix", learned, x, [0])
    np.testing.assert_allclose(got.effect(0), -2 * x[:, 0].mean((1, 2)).numpy(), rtol=1e-5)
    np.testing.assert_allclose(got.effect(1), 0.0, atol=1e-6)
    mean = ablate(model, "mix", learned, x, [0], "mean", np.array([0.3, 0.0]))
    np.testing.assert_allclose(mean.after[:, 0], 0.6, rtol=1e-5)
    swapped = patch(model, "mix", learned, x, other, [0])
    np.testing.assert_allclose(swapped.after[:, 0], 2 * other[:, 0].mean((1, 2)).numpy(),
                               rtol=1e-5)
    np.testing.assert_allclose(swapped.after[:, 1], got.before[:, 1], rtol=1e-6)
    with pytest.raises(NetscopeError, match="feature 7 does not exist: the dictionary has "
                                            "features 0..1"):
        ablate(model, "mix", learned, x, [7])


def test_two_torchrun_ranks_give_the_one_process_dictionary(squares, tmp_path):
    from tests.vision.torchrun import two_ranks

    args = ["vision", "dictionary", str(squares), "--model", "tests.vision.tiny_units:detector",
            "--layer", "mix", "--method", "topk-sae", "--features", "4", "--top-k", "1",
            "--epochs", "3", "--positions", "5", "--workers", "0", "--quiet",
            "--shard-size", "2"]
    two_ranks([*args, "--out", str(tmp_path / "dist")])
    shards = {p.name[:2] for p in (tmp_path / "dist" / "shards").glob("*.npz")}
    assert shards == {"r0", "r1"}
    assert main([*args, "--out", str(tmp_path / "alone")]) == 0
    a = np.load(tmp_path / "dist" / "samples.npy")
    b = np.load(tmp_path / "alone" / "samples.npy")
    np.testing.assert_array_equal(a, b)  # merged in image order, whatever the ranks
    da, _ = load_dictionary(tmp_path / "dist")
    db, _ = load_dictionary(tmp_path / "alone")
    torch.testing.assert_close(da.model.atoms(), db.model.atoms())


def _folder(root, pictures):
    root.mkdir()
    for i, img in enumerate(pictures):
        Image.fromarray((img * 255).round().astype(np.uint8)).save(root / f"i{i}.png")
    return root


def test_tcav_a_concept_that_raises_the_class_scores_one_and_is_significant(tmp_path, capsys):
    """The detector's class 0 reads the pooled ``mix`` unit 0 (square + edge detectors):
    at the pooled layer a red-square concept (against plain grey random sets) raises it on
    every image (score 1, significant); a random set taken as the concept is not."""
    rng = np.random.default_rng(0)
    squares = _folder(tmp_path / "squares", [T.red_square(rng, *rng.integers(6, 26, 2))
                                             for _ in range(12)])
    randoms = [_folder(tmp_path / f"random{j}", [T.grey(rng) for _ in range(10)])
               for j in range(9)]
    inputs = _folder(tmp_path / "inputs", [T.red_square(rng, *rng.integers(6, 26, 2))
                                           for _ in range(6)])
    args = ["vision", "tcav", str(inputs), "--model", "tests.vision.tiny_units:detector",
            "--concept", str(squares), "--concept", str(randoms[8]),
            *[a for r in randoms[:8] for a in ("--random", str(r))], "--layers", "pool",
            "--class", "0", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    table = pd.read_csv(tmp_path / "out" / "tcav.csv").set_index("concept")
    assert table.tcav_score["squares"] == 1.0 and bool(table.significant["squares"])
    assert not bool(table.significant["random8"])
    assert (tmp_path / "out" / "tcav.png").stat().st_size > 5000
    few = _folder(tmp_path / "few", [T.grey(rng) for _ in range(4)])
    assert main([*args[:6], str(few), *args[7:]]) == 2
    assert "4 readable image(s); a concept or random set needs at least 10" in \
        capsys.readouterr().err


def test_tcav_scores_equal_the_directional_derivatives():
    from netscope.vision.concepts.tcav import CAV, tcav_score

    g = np.array([[1.0, 0.0], [-1.0, 2.0], [0.5, -3.0]])
    sign, magnitude = tcav_score(g, CAV(np.array([1.0, 1.0]), 1.0))
    assert sign == pytest.approx(2 / 3) and magnitude == pytest.approx((1 + 1 - 2.5) / 3)


@pytest.fixture(scope="module")
def feature_atlas(squares, mix_nmf, tmp_path_factory):
    out = tmp_path_factory.mktemp("feature-atlas") / "atlas"
    assert main(["vision", "atlas", str(squares), "--model", MODEL, "--layers", "detect",
                 "--dictionary", str(mix_nmf[0]), "--top", "3", "--picture-steps", "2",
                 "--diverse", "0", "--table", "csv", "--workers", "0", "--quiet", "--out",
                 str(out)]) == 0
    return out


def test_atlas_with_a_dictionary_makes_features_units(mix_nmf, feature_atlas):
    """Features become a layer of the atlas: the square feature's strongest images are the
    square images, its page lists the units of mix it reads, and mix's unit pages link the
    features they feed; feature visualization runs on a feature like on a unit."""
    d, edge = mix_nmf
    out = feature_atlas
    units = pd.read_csv(out / "units.csv")
    square_top = units[(units.layer == "features_mix") & (units.unit == 1 - edge)]
    assert set(square_top.file) <= {f"p{i}.png" for i in range(6)}  # the square images
    page = (out / "features_mix" / f"{1 - edge}.html").read_text()
    assert "Strongest inputs from mix" in page and "Feature visualization" in page
    assert "Classes it supports" in page and "predicted class" in page
    # square images are predicted class 0 (mix 0 = square + edge >= mix 1 = square), and
    # the square feature's part of mix raises that logit
    assert re.search(r"<td>class 0</td><td>\+[0-9.e-]+</td>", page)
    assert "What it feeds in features_mix" in (out / "mix" / "1.html").read_text()
    # the unit pages say which features each unit takes part in: mix 0 (square + edge) is
    # polysemantic, mix 1 (the square) serves about one feature
    served = {u: float(re.search(r"This unit serves ([0-9.]+) features",
                                 (out / "mix" / f"{u}.html").read_text()).group(1))
              for u in (0, 1)}
    assert served[0] > 1.5 and served[1] < 1.2, served
    assert f"<a href='../features_mix/{edge}.html'>feature {edge}</a>" in \
        (out / "mix" / "0.html").read_text()
    direction = (out / "features_mix" / f"{edge}.html").read_text()
    assert "Its direction over mix" in direction
    assert direction.index("<a href='../mix/0.html'>unit 0</a>") < \
        direction.index("Strongest inputs from mix")


def test_cli_circuit_through_dictionary_features(squares, mix_nmf, feature_atlas, tmp_path,
                                                capsys):
    """With a dictionary of ``mix`` spliced in, class 1 (the square unit) runs through the
    square feature: it is the strongest feature node, spread 2 feeds it, and removing
    each node changes the score as predicted. With --atlas the page joins the atlas site:
    listed on its index, its feature nodes show their picture and open their pages."""
    import json
    import os

    model = MODEL
    d, edge = mix_nmf
    square = 1 - edge
    images = [str(squares / f"p{i}.png") for i in range(6)]  # the six squares
    assert main(["vision", "circuit", *images, "--model", model, "--layers",
                 "spread,features_mix", "--dictionary", str(d), "--class", "1", "--top", "2",
                 "--validate", "--atlas", str(feature_atlas), "--out", str(tmp_path / "c")]) == 0
    site_page = (feature_atlas / "circuits" / "class_1.html").read_text()
    assert f"href='../features_mix/{square}.html'" in site_page
    assert f"<image href='../features_mix/img/u{square}-main0.png'" in site_page
    assert "href='../spread/" not in site_page  # spread has no pages in this atlas
    assert "<a href='../index.html'>atlas index</a>" in site_page
    index = (feature_atlas / "index.html").read_text()
    assert index.count("<h2>Circuits</h2>") == 1 and "href='circuits/class_1.html'" in index
    here = (tmp_path / "c" / "circuit.html").read_text()  # links from the --out folder
    link = os.path.relpath(feature_atlas / "features_mix" / f"{square}.html", tmp_path / "c")
    assert f"href='{link}'" in here and link.startswith("..")
    doc = json.loads((tmp_path / "c" / "circuit.json").read_text())
    features = [n for n in doc["nodes"] if n["layer"] == "features_mix"]
    assert max(features, key=lambda n: abs(n["contribution"]))["node"] == square
    assert {"from_layer": "spread", "from": 2, "to_layer": "features_mix", "to": square} \
        .items() <= next(e for e in doc["edges"] if e["to"] == square
                         and e["from"] == 2).items()
    assert doc["checks"]["correlation"] > 0.9 and doc["checks"]["wrong_sign"] == []
    assert (tmp_path / "c" / "circuit.png").stat().st_size > 5000
    assert "correlation of measured with predicted change" in capsys.readouterr().out
    page = (tmp_path / "c" / "circuit.html").read_text()
    assert f"<title>features_mix:{square}: contribution" in page and "<svg" in page
    assert "Proof by intervention (zero)" in page and "<h2>Edges</h2>" in page


KILLED_LEARNING = """
import os, signal, sys
import numpy as np
sys.path.insert(0, os.getcwd())
from tests.vision.test_dictionaries import superposed
from netscope.vision.concepts.learn import LearnSettings, learn

def stop(line):
    if " 3/6" in line:
        os.kill(os.getpid(), signal.SIGKILL)

learn(superposed(600), LearnSettings(sys.argv[1], 3, top_k=1, epochs=6, lr=1e-2,
                                     batch_size=32), sys.argv[2], stop)
"""


@pytest.mark.parametrize("method", ["topk-sae", "nmf"])
def test_kill_9_during_learning_resumes_to_the_same_dictionary(tmp_path, method):
    import os
    import subprocess
    import sys

    s = LearnSettings(method, 3, top_k=1, epochs=6, lr=1e-2, batch_size=32)
    whole = learn(superposed(600), s)
    ck = tmp_path / "ck.pt"
    done = subprocess.run([sys.executable, "-c", KILLED_LEARNING, method, str(ck)],
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                          capture_output=True, text=True, timeout=120, cwd=os.getcwd())
    assert done.returncode == -9, done.stderr[-2000:]
    said = []
    again = learn(superposed(600), s, ck, said.append)
    assert any("resumed at" in line and " 3 of 6" in line for line in said)
    np.testing.assert_allclose(again.model.atoms().detach().numpy(),
                               whole.model.atoms().detach().numpy(), atol=1e-6)


@pytest.mark.parametrize("how", ["gradient", "lrp"])
def test_features_take_their_part_of_their_layers_relevance(squares, mix_nmf, how):
    """A feature's relevance is its part of the layer's: sum_c code_k atom_kc scale w_c, with
    w the class gradient (activation x gradient) or the layer's LRP relevance per unit of
    activation (the z-rule through codes x atoms); the features' parts and the
    reconstruction error's add up to the layer's relevance at every position."""
    from netscope.vision.concepts.tap import attach_features
    from netscope.vision.core.capture import LayerRef
    from netscope.vision.units.atlas_run import probe_layers
    from netscope.vision.units.relevance import _gradient_maps, _lrp_maps, unit_relevance

    learned, _ = load_dictionary(mix_nmf[0])
    lm = T.loaded()
    name = attach_features(lm.model, "mix", learned, T.SIZE)
    x = torch.from_numpy(np.stack([np.asarray(Image.open(squares / f"p{i}.png"), np.float32)
                                   / 255 for i in (0, 7)]).transpose(0, 3, 1, 2))
    layouts, _ = probe_layers(lm, ("mix", name))
    refs = {n: LayerRef.parse(n) for n in ("mix", name)}
    got = unit_relevance(lm.model, x, refs, layouts, how)
    maps, acts, weights = (_lrp_maps if how == "lrp" else _gradient_maps)(
        lm.model, x, {"mix": LayerRef.parse("mix")})
    a, w = acts["mix"].float(), weights["mix"].float()
    tap = dict(lm.model.named_modules())[name]
    features = tap.feature_relevance(a, w)  # (n, K, h, w)
    with torch.no_grad():
        codes = tap.dictionary.encode(a.flatten(2).transpose(1, 2).reshape(-1, 2) / tap.scale)
        rebuilt = (codes @ tap.dictionary.atoms() * tap.scale).reshape(2, -1, 2) \
            .transpose(1, 2).reshape(a.shape)
    error_part = ((a - rebuilt) * w).sum(1)
    layer = maps["mix"].sum(1)  # the layer's relevance at each position
    np.testing.assert_allclose((features.sum(1) + error_part).numpy(), layer.numpy(),
                               rtol=1e-4, atol=1e-5)
    total = features.flatten(2).sum(2)
    np.testing.assert_allclose(got[name][0], (total / (total.abs().sum(1, keepdim=True)
                                                         + 1e-10)).numpy(), rtol=1e-5)


def test_crop_samples_are_crafts_crops_pooled(squares, tmp_path):
    """--crops P: every crop of P pixels at stride 0.8 P (craft-xai's unfold), resized to
    the input (bilinear), through the model, the layer averaged over its grid: one sample
    per crop, equal to doing it by hand."""
    from netscope.vision.concepts.samples import SampleSettings, crops_of, sample_folder

    lm = T.loaded()
    got = sample_folder(lm, squares, tmp_path / "s", SampleSettings("mix", crops=16,
                                                                    workers=0))
    per_image = ((T.SIZE - 16) // 12 + 1) ** 2  # stride int(0.8 * 16) = 12: 2 x 2 crops
    assert got.x.shape == (12 * per_image, 2)
    assert got.origin[:per_image, 1].tolist() == list(range(per_image))
    picture = np.asarray(Image.open(squares / "p0.png"), np.float32) / 255
    x = torch.from_numpy(picture.transpose(2, 0, 1))[None]
    crops = crops_of(x, 16)
    assert crops.shape == (per_image, 3, T.SIZE, T.SIZE)
    np.testing.assert_allclose(crops[3], torch.nn.functional.interpolate(
        x[:, :, 12:28, 12:28], size=(T.SIZE, T.SIZE), mode="bilinear",
        align_corners=False)[0])
    model = T.detector()
    with torch.no_grad():
        mix = model.mix(model.relu(model.spread(model.relu(model.detect(crops)))))
    np.testing.assert_allclose(np.asarray(got.x[:per_image]), mix.mean((2, 3)).numpy(),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(NetscopeError, match="--crops must be between 1 and the model's input"):
        sample_folder(lm, squares, tmp_path / "t", SampleSettings("mix", crops=64))


def test_feature_crp_maps_and_the_errors_add_up_to_the_whole_map(squares, mix_nmf):
    """Concept relevance for dictionary features: each feature's map is the input relevance
    when only its share of the layer's relevance passes (z-rule through codes x atoms); the
    features' maps and the reconstruction error's add up to the unconditional LRP map, and
    the features' terms to the layer's relevance minus the error's."""
    from netscope.vision.concepts.tap import attach_features, feature_crp, feature_share
    from netscope.vision.core.capture import LayerRef, capture
    from netscope.vision.methods.relevance.propagate import lrp

    learned, _ = load_dictionary(mix_nmf[0])
    model = T.detector()
    name = attach_features(model, "mix", learned, T.SIZE, splice=True)
    x = torch.from_numpy(np.asarray(Image.open(squares / "p2.png"), np.float32)
                         .transpose(2, 0, 1)[None] / 255)
    terms, maps_for = feature_crp(model, x, [0], name)
    maps = maps_for([0, 1])
    whole = lrp(model, x, [0]).attributions[0].sum(0).numpy()
    with capture(model, [LayerRef.parse("mix")]) as rec, torch.no_grad():
        model(x)
    a = rec[LayerRef.parse("mix")].float()
    tap = dict(model.named_modules())[name]
    rest = 1 - feature_share(tap, a, 0) - feature_share(tap, a, 1)  # the error's share
    error = lrp(model, x, [0], weigh={"mix": rest}).attributions[0].sum(0).numpy()
    np.testing.assert_allclose(maps.sum(0) + error, whole, rtol=1e-4,
                               atol=1e-5 * np.abs(whole).max())
    assert np.abs(maps).max() > 0.1 * np.abs(whole).max()  # the features carry the class
    np.testing.assert_allclose(terms, [m.sum() for m in maps], rtol=1e-3, atol=1e-6)


def test_cli_concepts_explains_a_prediction_by_features(squares, mix_nmf, tmp_path, capsys):
    """Class 1 reads mix 1, the square unit: on a square image the square feature carries
    it, by activation x gradient and by concept relevance alike."""
    d, edge = mix_nmf
    for how in ("gradient", "lrp"):
        assert main(["vision", "concepts", str(squares / "p2.png"), "--model", MODEL,
                     "--dictionary", str(d), "--relevance", how, "--top", "2", "--class", "1",
                     "--out", str(tmp_path / how)]) == 0
        out = capsys.readouterr().out
        assert f"units of features_mix: {1 - edge} (" in out, out  # the square feature first
        assert (tmp_path / how / "concepts-p2.png").stat().st_size > 3000


def test_cli_lrp_circuit_through_dictionary_features(squares, mix_nmf, tmp_path):
    """`--relevance lrp` with features: the square feature carries class 1 on the squares,
    its relevance is its z-rule share of mix's, the edges into it from spread add up to it
    (relevance is conserved through the ReLU and the convolution), and removing it moves
    the score by minus its relevance (the network is linear after mix)."""
    import json

    d, edge = mix_nmf
    square = 1 - edge
    images = [str(squares / f"p{i}.png") for i in range(6)]
    assert main(["vision", "circuit", *images, "--model", MODEL, "--layers",
                 "spread,features_mix", "--dictionary", str(d), "--class", "1", "--top", "3",
                 "--share", "0", "--relevance", "lrp", "--validate", "--out",
                 str(tmp_path / "c")]) == 0
    doc = json.loads((tmp_path / "c" / "circuit.json").read_text())
    assert doc["relevance"] == "lrp"
    features = {n["node"]: n["contribution"] for n in doc["nodes"]
                if n["layer"] == "features_mix"}
    assert max(features, key=lambda k: abs(features[k])) == square
    into = sum(e["weight"] for e in doc["edges"] if e["to"] == square)
    assert into == pytest.approx(features[square], rel=1e-3)
    node = next(n for n in doc["checks"]["nodes"] if n["node"] == f"features_mix:{square}")
    assert node["measured"] == pytest.approx(node["predicted"], rel=1e-3)
    assert main(["vision", "circuit", *images, "--model", MODEL, "--layers", "spread",
                 "--relevance", "lrp", "--validate", "--ablation", "mean", "--out",
                 str(tmp_path / "d")]) == 2
