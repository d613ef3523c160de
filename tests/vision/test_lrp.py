"""LRP: each rule against relevance computed by hand on a two-layer network, conservation,
batches, the model left as it was, and bad input."""

import numpy as np
import pytest
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.methods.relevance import COMPOSITES
from netscope.vision.methods.relevance.propagate import lrp
from netscope.vision.methods.relevance.rules import (
    AlphaBeta,
    Epsilon,
    Flat,
    Gamma,
    Pass,
    WSquare,
    ZBox,
    ZPlus,
)
from tests.vision.tiny_lrp import BiasFree, TinyResNet, TinyVGG, inputs

EPS = 1e-6


def stab(z, eps=EPS):
    return z + eps * np.where(z >= 0, 1.0, -1.0)


def dense(x, W, b, R, rule):
    """Input relevance of y = W x + b by the rule's definition, in loops (W: out x in)."""
    out, n = W.shape
    Rin = np.zeros(n)
    p, q = np.maximum, np.minimum
    for j in range(out):
        w, bj = W[j], b[j]
        if rule == "epsilon":
            c = x * w
            Rin += c / stab(c.sum() + bj) * R[j]
        elif rule in ("zplus", "alphabeta"):
            pos = p(x, 0) * p(w, 0) + q(x, 0) * q(w, 0)
            neg = p(x, 0) * q(w, 0) + q(x, 0) * p(w, 0)
            share = pos / stab(pos.sum() + max(bj, 0))
            if rule == "alphabeta":
                share = 2 * share - neg / stab(neg.sum() + min(bj, 0))
            Rin += share * R[j]
        elif rule == "gamma":
            g, z = 0.25, (x * w).sum() + bj
            up, down = w + g * p(w, 0), w + g * q(w, 0)
            if z > 0:
                c, bias = p(x, 0) * up + q(x, 0) * down, bj + g * max(bj, 0)
            elif z < 0:
                c, bias = p(x, 0) * down + q(x, 0) * up, bj + g * min(bj, 0)
            else:
                continue
            Rin += c / stab(c.sum() + bias) * R[j]
        elif rule == "flat":
            Rin += np.ones(n) / stab(n) * R[j]
        elif rule == "wsquare":
            Rin += w**2 / stab((w**2).sum() + bj**2) * R[j]
        elif rule == "zbox":
            lo, hi = -np.ones(n), 2 * np.ones(n)
            c = x * w - lo * p(w, 0) - hi * q(w, 0)
            Rin += c / stab(c.sum()) * R[j]
    return Rin


RULES = {"epsilon": Epsilon(EPS), "zplus": ZPlus(EPS), "alphabeta": AlphaBeta(2, 1, EPS),
         "gamma": Gamma(0.25, EPS), "flat": Flat(EPS), "wsquare": WSquare(EPS),
         "zbox": ZBox(-1.0, 2.0, EPS)}


@pytest.mark.parametrize("rule", list(RULES))
def test_each_rule_equals_its_definition_on_two_layers(rule):
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2)).double().eval()
    x = torch.randn(1, 5, dtype=torch.float64)
    heat = lrp(net, x, [1], rules={"0": RULES[rule], "2": Epsilon(EPS)}, composite="epsilon")
    W1, b1 = (p.detach().numpy() for p in (net[0].weight, net[0].bias))
    W2, b2 = (p.detach().numpy() for p in (net[2].weight, net[2].bias))
    xn = x[0].numpy()
    h = np.maximum(W1 @ xn + b1, 0)
    out = W2 @ h + b2
    R2 = np.array([0.0, out[1]])  # the target's logit enters, the other output gets none
    R1 = dense(h, W2, b2, R2, "epsilon")  # ReLU passes relevance unchanged
    expected = dense(xn, W1, b1, R1, rule)
    np.testing.assert_allclose(heat.attributions[0].numpy(), expected, rtol=1e-10, atol=1e-12)
    assert float(heat.extras["score"][0]) == pytest.approx(out[1])


@pytest.mark.parametrize("composite", COMPOSITES)
def test_a_bias_free_network_conserves_the_score(composite):
    model, x = BiasFree().double().eval(), inputs().double()
    heat = lrp(model, x, [0, 3], composite=composite, epsilon=0.0 if composite == "epsilon"
               else 1e-9, stabilizer=1e-12)
    score = model(x)[[0, 1], [0, 3]]
    torch.testing.assert_close(heat.extras["relevance"], score, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(heat.extras["score"], score)


def test_residual_sums_split_relevance_in_proportion():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.a = nn.Conv2d(3, 3, 3, padding=1, bias=False)
            self.b = nn.Conv2d(3, 3, 1, bias=False)
            self.fc = nn.Linear(3, 2, bias=False)

        def forward(self, x):
            y = torch.relu(self.a(x)) + self.b(x)  # a functional sum, not a module
            return self.fc(y.mean((2, 3)))

    model, x = Residual().double().eval(), inputs(1, 6).double()
    heat = lrp(model, x, [1], composite="epsilon", epsilon=0.0)
    torch.testing.assert_close(heat.extras["relevance"], model(x)[:, 1])  # nothing doubled


@pytest.mark.parametrize("make", [TinyVGG, TinyResNet])
def test_batched_equals_one_at_a_time_and_the_model_is_untouched(make):
    model = make().double()
    model.train()  # LRP explains the model in eval mode, on a copy: this flag must survive
    x = inputs(3).double()
    flags = [p.requires_grad for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    batch = lrp(model, x, [0, 1, 2], composite="epsilon-gamma-box", low=-3.0, high=3.0)
    for i in range(3):
        one = lrp(model, x[i:i + 1], [i], composite="epsilon-gamma-box", low=-3.0, high=3.0)
        torch.testing.assert_close(one.attributions, batch.attributions[i:i + 1])
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                   for m in model.modules())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert batch.maps.shape == (3, 12, 12) and float(batch.maps.amax()) == 1.0
    assert batch.attributions.shape == x.shape and batch.method == "lrp"


def test_bad_input_is_refused_clearly():
    model, x = TinyVGG().double().eval(), inputs().double()
    with pytest.raises(NetscopeError, match="unknown composite 'zennit'"):
        lrp(model, x, composite="zennit")
    with pytest.raises(NetscopeError, match="epsilon must be > 0"):
        lrp(model, x, epsilon=0.0)
    with pytest.raises(NetscopeError, match="gamma must be >= 0"):
        lrp(model, x, composite="epsilon-gamma-box", gamma=-1)
    with pytest.raises(NetscopeError, match="alpha - beta = 1"):
        AlphaBeta(2, 2)
    with pytest.raises(NetscopeError, match=r"rules\['features.0'\] must be an LRP rule"):
        lrp(model, x, rules={"features.0": "flat"})

    class Softmaxed(nn.Module):  # a layer LRP has no rule for
        def __init__(self):
            super().__init__()
            self.conv, self.soft, self.fc = nn.Conv2d(3, 2, 1), nn.Softmax(1), nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(self.soft(self.conv(x)).mean((2, 3)))

    odd = Softmaxed().double().eval()
    with pytest.raises(NetscopeError, match=r"no rule for Softmax at soft; give it one by "
                                            r"name: lrp\(\.\.\., rules=\{'soft': Pass\(\)\}\)"):
        lrp(odd, x)
    given = lrp(odd, x, rules={"soft": Pass()})  # the user's rule makes it work
    assert torch.isfinite(given.attributions).all()

    class Branchy(nn.Module):  # data-dependent control flow: fx cannot trace it
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            x = x.mean((2, 3))
            return self.fc(x) if x.sum() > 0 else -self.fc(x)

    with pytest.raises(NetscopeError, match="LRP needs a model torch.fx or torch.export can "):
        lrp(Branchy().double(), x)


def test_lrp_from_the_command_line_draws_signed_relevance(tmp_path, capsys):
    from PIL import Image

    from netscope.cli import main

    rc = main(["vision", "saliency", "chelsea", "--model", "tests.vision.tiny:tiny_gap32",
               "--method", "lrp", "--composite", "epsilon-gamma-box", "--bare", "--out",
               str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and "relevance" in out and "of the score" in out
    picture = np.asarray(Image.open(tmp_path / "chelsea_lrp-epsilon-gamma-box_class_2.png"))
    assert picture.shape == (16, 16, 3)
    with pytest.raises(SystemExit) as stop:  # epsilon must be > 0
        main(["vision", "saliency", "chelsea", "--method", "lrp", "--epsilon", "0"])
    assert stop.value.code == 2 and "--epsilon: expected a number > 0" in \
        capsys.readouterr().err


def test_relevance_pictures_diverge_around_zero():
    from netscope.render.heatmap import relevance_image

    rgb = relevance_image(np.array([[-1.0, 0.0, 1.0]]))
    blue, white, red = rgb[0]
    assert blue[2] > 0.9 and blue[0] < 0.1 and red[0] > 0.9 and red[2] < 0.1
    assert white.min() > 0.95  # no evidence is white
    assert relevance_image(np.zeros((2, 2))).min() > 0.95  # nothing at all stays white


def test_relevance_through_units_adds_up_to_the_whole():
    """Concept relevance: the maps conditioned on each channel of a layer sum to the plain
    map (the backward pass is linear in the relevance), and on a bias-free network each
    channel's map carries exactly the relevance that passes through that channel."""
    model, x = BiasFree().double().eval(), inputs(2).double()
    kw = {"composite": "epsilon", "epsilon": 0.0}
    whole = lrp(model, x, [0, 3], units="net.2", **kw)
    per_unit = whole.extras["units"]
    assert per_unit.shape == (2, 6)
    torch.testing.assert_close(per_unit.sum(1), whole.extras["score"])  # all of it passes
    parts = [lrp(model, x, [0, 3], through={"net.2": [k]}, **kw) for k in range(6)]
    torch.testing.assert_close(sum(p.attributions for p in parts), whole.attributions)
    for k, part in enumerate(parts):
        torch.testing.assert_close(part.extras["relevance"], per_unit[:, k])
    two = lrp(model, x, [0, 3], through={"net.2": [1, 4]}, **kw)
    torch.testing.assert_close(two.attributions, parts[1].attributions + parts[4].attributions)
    with pytest.raises(NetscopeError, match="channels \\[9\\] do not all exist"):
        lrp(model, x, through={"net.2": [9]}, **kw)
    with pytest.raises(NetscopeError, match="no layer 'net.9'"):
        lrp(model, x, units="net.9", **kw)


def test_vision_transformers_need_no_user_code():
    """Attention (the weights held constant, relevance to the values) and layer norms (the
    SD held constant) pass relevance conservatively: a ViT without biases or position
    embedding conserves the score; the class-token ViT gives a map; nn.MultiheadAttention
    is refused clearly."""
    from tests.vision.tiny_transformers import TinyViT, tiny_vit

    torch.manual_seed(0)
    vit = TinyViT(cls_token=False).double().eval()
    with torch.no_grad():
        vit.pos.zero_()
        for name, p in vit.named_parameters():
            if name.endswith("bias"):
                p.zero_()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    heat = lrp(vit, x, [0, 2], composite="epsilon", epsilon=1e-12)
    torch.testing.assert_close(heat.extras["relevance"], vit(x)[[0, 1], [0, 2]], rtol=1e-6,
                               atol=1e-9)
    with_cls = lrp(tiny_vit(), x.float())
    assert with_cls.maps.shape == (2, 32, 32) and torch.isfinite(with_cls.attributions).all()
    assert float(with_cls.maps.amax()) == 1.0
    mha = TinyViT(cls_token=False, mha=True).double().eval()
    with torch.no_grad():
        mha.pos.zero_()
        for name, p in mha.named_parameters():
            if name.endswith("bias"):
                p.zero_()
    heat = lrp(mha, x, [1, 4], composite="epsilon", epsilon=1e-12)
    torch.testing.assert_close(heat.extras["relevance"], mha(x)[[0, 1], [1, 4]], rtol=1e-6,
                               atol=1e-9)


class ExplicitAttention(nn.Module):
    """Attention written out as Hugging Face's eager ViT does: matmul, scale, softmax,
    matmul, and a layer scale by a parameter (as timm's)."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.embed = nn.Conv2d(3, dim, 4, 4, bias=False)
        self.q, self.k, self.v = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.gamma = nn.Parameter(torch.full((dim,), 0.5))
        self.head = nn.Linear(dim, 3, bias=False)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        scores = torch.matmul(self.q(t), self.k(t).transpose(-1, -2)) / 8 ** 0.5
        mixed = torch.matmul(scores.softmax(-1), self.v(t))
        return self.head((t + mixed * self.gamma).mean(1))


def test_attention_written_out_needs_no_user_code():
    model, x = ExplicitAttention().double().eval(), inputs(2, 16).double()
    heat = lrp(model, x, [0, 2], composite="epsilon", epsilon=0.0)
    torch.testing.assert_close(heat.extras["relevance"], model(x)[[0, 1], [0, 2]])
    assert heat.attributions.abs().sum() > 0


def test_a_rule_for_a_layer_the_model_lacks_is_refused_by_name():
    import torch

    from netscope.errors import NetscopeError
    from netscope.vision import lrp  # the README's name is importable from the package
    from netscope.vision.methods.relevance.rules import Epsilon

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(144, 3)).eval()
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(NetscopeError, match="rules name layer 'nope', which the model does "
                                            "not have"):
        lrp(model, x, [0], rules={"nope": Epsilon(1e-6)})
    with pytest.raises(NetscopeError, match="did you mean '0'"):
        lrp(model, x, [0], rules={"00": Epsilon(1e-6)})
    assert lrp(model, x, [0], rules={"0": Epsilon(1e-6)}).maps.shape == (1, 8, 8)


class _Twins(torch.nn.Module):
    """One network written with in-place operations (``inplace=True``) or without."""

    def __init__(self, case: str, inplace: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.case, self.inplace = case, inplace
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.relu = torch.nn.ReLU(inplace=inplace)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        h, i = self.conv(x), self.inplace
        if self.case == "augmented":  # h += 0.5; h.mul_(2.0)
            h = torch.relu(h)
            if i:
                h += 0.5
                h.mul_(2.0)
            else:
                h = (h + 0.5) * 2.0
        elif self.case == "module":  # nn.ReLU(inplace=True) changes h under the residual
            r = self.relu(h)
            h = r + h if i else r + r
        elif self.case == "function":  # F.relu(..., inplace=True)
            r = torch.nn.functional.relu(h, inplace=i)
            h = h * 0.5 + r if i else r * 0.5 + r
        elif self.case == "method":  # h.add_(other branch), torch.relu_
            g = self.conv2(x)
            if i:
                h.add_(g)
                torch.relu_(h)
            else:
                h = torch.relu(h + g)
        return self.fc(h.mean((2, 3)))


@pytest.mark.parametrize("case", ["augmented", "module", "function", "method"])
def test_in_place_operations_give_the_out_of_place_map(case):
    """In-place operations in forward were dropped by the traced copy (its map explained
    another function without a word); the copy now rewrites them as ordinary operations,
    so each network written in place gets exactly the map of its out-of-place twin, and its
    score is the model's."""
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    inplace, twin = _Twins(case, True).eval(), _Twins(case, False).eval()
    torch.testing.assert_close(inplace(x.clone()), twin(x))
    got, want = lrp(inplace, x, [0, 0]), lrp(twin, x, [0, 0])
    torch.testing.assert_close(got.extras["score"], inplace(x.clone())[:, 0].detach())
    torch.testing.assert_close(got.attributions, want.attributions, rtol=1e-5, atol=1e-7)


def test_a_change_through_a_view_is_refused_not_explained():
    """What the rewrite cannot see (an in-place change through a view of a tensor) is
    caught by the score check every call makes: the model is refused by name."""

    class ThroughView(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Linear(4, 3)

        def forward(self, x):
            h = torch.relu(self.conv(x))
            h[:, 0].mul_(3.0)
            return self.fc(h.mean((2, 3)))

    torch.manual_seed(0)
    with pytest.raises(NetscopeError, match="traced copy of the model gives the target score"):
        lrp(ThroughView().eval(), torch.rand(2, 3, 8, 8), [0, 0])


def test_a_block_with_layers_inside_is_refused_without_a_rule_that_breaks_conservation():
    """A built-in block the trace cannot see into (here nn.TransformerDecoderLayer) must not
    be given one rule (Pass() would hand all relevance to its input and break conservation):
    the error says to write it out or use another method."""

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Conv2d(3, 8, 4, 4)
            self.dec = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            t = self.embed(x).flatten(2).transpose(1, 2)
            return self.head(self.dec(t, t).mean(1))

    with pytest.raises(NetscopeError) as err:
        lrp(Decoder().eval(), torch.rand(1, 3, 16, 16), [0])
    said = str(err.value)
    assert "TransformerDecoderLayer at dec, a module with its own layers" in said
    assert "Pass()" not in said and "would not conserve relevance" in said


class TwoHeads(nn.Module):
    """Returns {"main": class scores, "aux": another head}; ``OneHead`` the main one only."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc, self.aux = nn.Linear(4, 3), nn.Linear(4, 2)

    def forward(self, x):
        h = torch.relu(self.conv(x)).mean((2, 3))
        return {"aux": self.aux(h), "main": self.fc(h)}


class OneHead(TwoHeads):
    def forward(self, x):
        return super().forward(x)["main"]


def two_heads() -> nn.Module:
    return TwoHeads().eval()


def test_lrp_reads_the_output_key_the_model_is_read_for(tmp_path, capsys):
    """--output-key (read_output) was ignored by LRP, whose traced copy drops hooks: a model
    with several outputs could not be explained by relevance. The copy now returns the same
    part, and the map equals that of the model returning it alone."""
    from netscope.cli import main
    from netscope.vision.core.targets import read_output

    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    model = read_output(TwoHeads().eval(), "main")
    torch.testing.assert_close(lrp(model, x, [2, 1]).attributions,
                               lrp(OneHead().eval(), x, [2, 1]).attributions)
    read_output(model, "aux")
    assert lrp(model, x, [1, 0]).maps.shape == (2, 8, 8)
    assert main(["vision", "saliency", "chelsea", "--method", "lrp", "--model",
                 "tests.vision.test_lrp:two_heads", "--output-key", "main", "--out",
                 str(tmp_path / "o")]) == 0


def test_the_command_line_registry_and_function_share_one_source_of_lrp_settings():
    """The composites' names and LRP's defaults are declared once: the registry's settings
    and lrp()'s own defaults agree (the command line derives its options from the registry:
    tests/vision/test_method_options.py)."""
    import inspect

    from netscope.vision.methods.registry import METHODS

    settings = {s.name: s for s in METHODS["lrp"].settings}
    assert tuple(settings["composite"].choices) == COMPOSITES
    defaults = inspect.signature(lrp).parameters
    for name in ("composite", "epsilon", "gamma", "stabilizer", "attention"):
        assert defaults[name].default == settings[name].default, name



def test_a_composite_added_by_one_table_entry_is_offered_everywhere(monkeypatch):
    """Composites are a table of (layer role, rule) with a first-layer rule, as Zennit's
    LayerMapComposite: one entry makes a composite lrp(), explain() and the command line
    know."""
    from netscope.cli import build_parser
    from netscope.vision.methods.registry import explain
    from netscope.vision.methods.relevance import COMPOSITE_TABLE, CompositeSpec
    from netscope.vision.methods.relevance.composites import Composite
    from netscope.vision.methods.relevance.rules import Flat, ZPlus

    monkeypatch.setitem(COMPOSITE_TABLE, "zplus-all", CompositeSpec(
        {"conv": "zplus", "dense": "zplus"}, first="flat", first_roles=("dense",)))
    c = Composite("zplus-all")
    assert isinstance(c.choose("dense", "fc", False), ZPlus)
    assert isinstance(c.choose("dense", "fc", True), Flat)
    assert isinstance(c.choose("conv", "features.0", True), ZPlus)  # first: dense only
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 3)).double().eval()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    ours = explain("lrp", model, x, [1], composite="zplus-all")
    assert not torch.allclose(ours.maps, explain("lrp", model, x, [1]).maps)
    args = build_parser().parse_args(["vision", "saliency", "chelsea", "--method", "lrp",
                                      "--composite", "zplus-all"])
    assert args.composite == "zplus-all"
