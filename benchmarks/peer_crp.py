"""netscope's concept relevance (LRP with ``through={layer: [k]}``) against zennit-crp 0.6's
``CondAttribution`` on the same VGG-style network, rule (EpsilonPlus) and conditions: the
conditional heat map of class c through channel k of a layer. `pip install --no-deps
--target /tmp/zen/lib zennit zennit-crp` (it also needs tqdm on the path; zennit's
torchvision import is stubbed), then `PYTHONPATH=/tmp/zen/lib:/tmp/oc/lib python
benchmarks/peer_crp.py`. Also the LRP circuit against ``CondAttribution(record_layer=...)``,
and the reference images by relevance against ``FeatureVisualization``. `... peer_crp.py
--write-reference tests/vision/data/crp_reference.json` writes the numbers the test suite
holds (it cannot import zennit-crp).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn


def vgg() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(12, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 10)).eval()


def _stub_torchvision() -> None:
    """zennit imports torchvision's ResNet blocks for its canonizers; none is used here."""
    import types

    names = ("torchvision", "torchvision.models", "torchvision.models.resnet",
             "torchvision.transforms", "torchvision.transforms.functional")
    for name in names:
        sys.modules.setdefault(name, types.ModuleType(name))
    resnet = sys.modules["torchvision.models.resnet"]
    resnet.Bottleneck = type("Bottleneck", (nn.Module,), {})
    resnet.BasicBlock = type("BasicBlock", (nn.Module,), {})
    sys.modules["torchvision"].models = sys.modules["torchvision.models"]
    sys.modules["torchvision.models"].resnet = resnet
    sys.modules["torchvision.transforms.functional"].gaussian_blur = None  # crp.image only


def main() -> None:
    _stub_torchvision()
    from crp.attribution import CondAttribution
    from zennit.composites import EpsilonPlus

    from netscope.vision.methods.relevance.propagate import lrp

    model = vgg()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    worst = 0.0
    for layer, channel, target in (("2", 3, 4), ("5", 7, 1), ("5", 0, 9)):
        attribution = CondAttribution(model)
        conditions = [{"y": [target], layer: [channel]}]
        theirs = attribution(x.clone().requires_grad_(True), conditions, EpsilonPlus()).heatmap
        ours = lrp(model, x, [target] * len(x), composite="epsilon-plus", epsilon=1e-6,
                   through={layer: [channel]}).attributions.sum(1)
        diff = float((ours - theirs).abs().max() / theirs.abs().max().clamp_min(1e-30))
        worst = max(worst, diff)
        print(f"layer {layer}, channel {channel}, class {target}: largest difference "
              f"{diff:.1e} of the largest relevance (total {float(theirs.sum()):.4g} / "
              f"{float(ours.sum()):.4g})")
    print(f"worst {worst:.1e}")
    graph(model)
    references(model)


def graph(model: nn.Module) -> None:
    """The LRP circuit (``class_circuit(relevance="lrp")``): node relevance and conditional
    edge relevance against zennit-crp's ``CondAttribution`` with ``record_layer`` (what its
    ``AttributionGraph`` reads), class 4 through layers 2 and 5."""
    from crp.attribution import CondAttribution
    from zennit.composites import EpsilonPlus

    from netscope.vision.concepts.circuit import class_circuit

    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    target = 4
    ours = class_circuit(model, x, target, ["2", "5"], top=4, share=0.0, relevance="lrp",
                         expanded=False)
    attribution = CondAttribution(model)
    whole = attribution(x.clone().requires_grad_(True), [{"y": [target]}], EpsilonPlus(),
                        record_layer=["2", "5"])
    worst = 0.0
    for name in ("2", "5"):
        theirs = whole.relevances[name].sum((2, 3)).mean(0).detach().numpy()
        worst = max(worst, float(abs(theirs - ours.contribution[name]).max()
                                 / abs(theirs).max()))
    for a, i, b, j, w in ours.edges:
        cond = attribution(x.clone().requires_grad_(True), [{"y": [target], b: [j]}],
                           EpsilonPlus(), record_layer=[a])
        theirs = float(cond.relevances[a][:, i].sum((1, 2)).mean())
        worst = max(worst, abs(theirs - w) / max(abs(theirs), 1e-12))
    print(f"LRP circuit, {len(ours.edges)} edges: node and edge relevance against "
          f"CondAttribution, largest relative difference {worst:.1e}")


def references(model: nn.Module, n: int = 48, k: int = 8) -> None:
    """Reference images by relevance: zennit-crp's ``FeatureVisualization`` (EpsilonPlus,
    ``max_target="sum"``, ``abs_norm=True``, each image's target its predicted class)
    against the atlas's relevance ranking (``units/relevance.py`` streamed through
    ``UnitState``) on the same images: the top-k images per channel, their values and the
    most relevant positions."""
    import tempfile
    import time

    import numpy as np
    from crp.concepts import ChannelConcept
    from crp.helper import load_maximization
    from crp.visualization import FeatureVisualization
    from zennit.composites import EpsilonPlus

    from netscope.vision.core.capture import LayerRef
    from netscope.vision.core.token_grid import layout_for
    from netscope.vision.units.relevance import unit_relevance
    from netscope.vision.units.streaming import UnitState

    x = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        predicted = model(x).argmax(1).tolist()
    data = [(x[i], predicted[i]) for i in range(n)]
    layers = ["2", "5"]
    with tempfile.TemporaryDirectory() as folder:
        from crp.attribution import CondAttribution

        fv = FeatureVisualization(CondAttribution(model), data,
                                  {name: ChannelConcept() for name in layers},
                                  path=folder, max_target="sum", abs_norm=True)
        start = time.perf_counter()
        fv.run(EpsilonPlus(), 0, n, batch_size=16)
        their_time = time.perf_counter() - start
        theirs = {name: [np.array(a) for a in load_maximization(fv.RelMax.PATH, name)]
                  for name in layers}
    refs = {name: LayerRef.parse(name) for name in layers}
    with torch.no_grad():
        from netscope.vision.core.capture import capture

        with capture(model, list(refs.values())) as rec:
            model(x[:1])
        layouts = {name: layout_for(model, rec[refs[name]], (32, 32), name) for name in layers}
    states = {name: UnitState(k, k, rec[refs[name]].shape[1]) for name in layers}
    began = time.perf_counter()
    for start in range(0, n, 16):
        ids = np.arange(start, min(n, start + 16))
        for name, (share, y, xx) in unit_relevance(model, x[ids], refs, layouts,
                                                   "lrp").items():
            states[name].update_relevance(share, ids, y, xx)
    our_time = time.perf_counter() - began
    print(f"{n} images: zennit-crp FeatureVisualization.run {their_time:.2f} s (with its "
          f"result files), netscope {our_time:.2f} s ({their_time / our_time:.1f}x)")
    for name in layers:
        d, rel, rf = theirs[name]  # (samples, channels)
        a = states[name].arrays
        w = layouts[name].to_grid(rec[refs[name]]).shape[-1]
        live = [c for c in range(d.shape[1]) if np.abs(rel[:k, c]).max() > 1e-9]
        # images with a non-zero share (zero ties: netscope orders them by image index,
        # zennit-crp's argsort arbitrarily)
        shown = {c: rel[:k, c] != 0 for c in live}
        same_images = all(a["rel_image"][c][shown[c]].tolist() == d[:k, c][shown[c]].tolist()
                          for c in live)
        value_diff = max(float(np.abs(a["rel_value"][c] - rel[:k, c]).max()) for c in live)
        same_rf = all((a["rel_y"][c] * w + a["rel_x"][c])[shown[c]].tolist()
                      == rf[:k, c][shown[c]].tolist() for c in live)
        print(f"layer {name}: {len(live)} channels with relevance, "
              f"{sum(int(v.sum()) for v in shown.values())} (channel, image) pairs; top-{k} images "
              f"{'identical' if same_images else 'DIFFER'}, largest share difference "
              f"{value_diff:.1e}, most relevant positions "
              f"{'identical' if same_rf else 'DIFFER'}")


def held_in() -> nn.Module:
    """A VGG-style network whose weights are a formula (no random generator), for the test
    that holds zennit-crp's numbers (tests/vision/data/crp_reference.json)."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(5, 6, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 3)).eval()
    with torch.no_grad():
        for k, p in enumerate(net.parameters()):
            p.copy_(0.4 * torch.sin(torch.arange(p.numel(), dtype=torch.float32) * 0.7 + k)
                    .reshape(p.shape))
    return net


def held_in_input() -> torch.Tensor:
    grid = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    return torch.cos(grid * 0.37) + 0.2


def write_reference(path: str) -> None:
    """zennit-crp's conditional heat maps and layer relevances on ``held_in()``, for the
    test suite (which cannot import zennit-crp)."""
    import json

    from crp.attribution import CondAttribution
    from zennit.composites import EpsilonPlus

    model, x = held_in(), held_in_input()
    cases = []
    for layer, channel, target in (("2", 1, 0), ("2", 3, 2), ("5", 4, 1), ("5", 0, 0)):
        got = CondAttribution(model)(x.clone().requires_grad_(True),
                                     [{"y": [target], layer: [channel]}], EpsilonPlus(),
                                     record_layer=["0", "2", "5"])
        cases.append({"layer": layer, "channel": channel, "target": target,
                      "heatmap": got.heatmap.tolist(),
                      "relevance": {k: v.sum((2, 3)).tolist()
                                    for k, v in got.relevances.items()}})
    Path(path).write_text(json.dumps(cases))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--write-reference":
        _stub_torchvision()
        write_reference(sys.argv[2])
    else:
        main()
