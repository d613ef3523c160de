"""Agreement with the peers, run wherever they are installed (they are references, not
dependencies: without them these tests are skipped, saying which package they need). The
full comparisons, with timings, are in benchmarks/ (BENCHMARKS.md)."""

import pytest
import torch


def test_lrp_equals_zennit_on_vgg_and_resnet_style_networks():
    zennit = pytest.importorskip("zennit", reason="Zennit is not installed (a peer, not a "
                                 "dependency: pip install --no-deps zennit)")
    from zennit.attribution import Gradient
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.composites import EpsilonPlus

    from benchmarks.peer_lrp_zennit import zennit_sums
    from netscope.vision.methods.relevance.propagate import lrp
    from tests.vision.tiny_lrp import TinyResNet, TinyVGG, eps_into_variance, inputs

    assert zennit
    x = inputs().double()
    for make in (TinyVGG, TinyResNet):
        model = eps_into_variance(make().eval().double())
        theirs_model = eps_into_variance(zennit_sums(make().eval().double()))
        with torch.no_grad():
            out = theirs_model(x)
        start = torch.zeros_like(out)
        start[[0, 1], [0, 1]] = out[[0, 1], [0, 1]]
        with Gradient(model=theirs_model,
                      composite=EpsilonPlus(canonizers=[SequentialMergeBatchNorm()])) as att:
            _, theirs = att(x, start)
        ours = lrp(model, x, [0, 1], composite="epsilon-plus").attributions
        assert float((ours - theirs).abs().max() / theirs.abs().max()) < 1e-9, make.__name__


def test_attnlrp_rules_equal_lxt():
    pytest.importorskip("lxt", reason="LXT is not installed (a peer, not a dependency: pip "
                        "install --no-deps lxt)")
    import lxt.explicit.functional as lf

    from benchmarks.peer_lxt import attention_step, layer_norm_step

    assert attention_step(lf) < 1e-10 and layer_norm_step(lf) < 1e-10
