"""netscope's CRAFT design and estimator against craft-xai 0.0.3's, on the same numbers: the
Halton masks (``HaltonSequence``) and the total Sobol indices (``JansenEstimator``) of the
same outputs. craft-xai imports TensorFlow at module level for another sampler; this script
stubs it. `pip download --no-deps craft-xai` and unzip the wheel into /tmp/craft, then
`PYTHONPATH=/tmp/craft python benchmarks/peer_craft.py`.
"""

from __future__ import annotations

import sys
import types

import numpy as np


def main() -> None:
    sys.modules.setdefault("tensorflow", types.ModuleType("tensorflow"))
    from craft.sobol.estimators import JansenEstimator
    from craft.sobol.sampler import HaltonSequence

    from netscope.vision.concepts.craft import halton_design, jansen_total

    rng = np.random.default_rng(0)
    for k, d in ((5, 32), (10, 32), (25, 64)):
        theirs = HaltonSequence()(k, nb_design=d)
        ours = halton_design(k, d)
        outputs = (ours @ rng.normal(size=k) + 0.3 * np.sin(ours.sum(1) * 3)).astype(np.float32)
        a = jansen_total(outputs, d, k)
        b = JansenEstimator()(theirs, outputs, d)
        print(f"K={k}, designs {d}: masks differ by {np.abs(ours - theirs).max():.1e}, total "
              f"indices by {np.abs(a - b).max():.1e} (largest index {a.max():.3f})")
    crops()


def crops() -> None:
    """CRAFT's samples: craft-xai's ``Craft.fit`` crops (unfold at stride 0.8 P, resized)
    and pooled activations against ``vision dictionary --crops P``'s sample pass, on the
    same images and the same model half. (Their NMF is scikit-learn's coordinate descent;
    netscope's equals scikit-learn's multiplicative updates, tested.)"""
    import torch
    from craft.craft_torch import Craft, _batch_inference

    from netscope.vision.concepts.samples import SampleSettings, SampleShard, sample_batch
    from netscope.vision.core.capture import LayerRef
    from netscope.vision.models.zoo import LoadedModel, Preprocess
    from netscope.vision.units.atlas_run import probe_layers

    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(8, 6, 3, stride=2, padding=1), torch.nn.ReLU())
    head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(6, 4))
    model = torch.nn.Sequential(body, head).eval()
    x = torch.rand(5, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    for crop in (16, 24, 32):
        craft = Craft(body, head, number_of_concepts=3, patch_size=crop, batch_size=64,
                      device="cpu")
        patches, _, _ = craft.fit(x)
        theirs = _batch_inference(body, patches, 64, 64, device="cpu").mean((2, 3)).numpy()
        lm = LoadedModel("peer", model, Preprocess(64, (0.0,) * 3, (1.0,) * 3), None)
        layouts, _ = probe_layers(lm, ("0",))
        shard = SampleShard()
        sample_batch(lm, x, np.arange(5), LayerRef.parse("0"), layouts["0"],
                     SampleSettings("0", crops=crop, workers=0), shard)
        ours = np.concatenate(shard.x)
        print(f"crops of {crop} px: {len(ours)} samples (craft-xai {len(theirs)}), largest "
              f"difference {np.abs(ours - theirs).max():.1e} of {np.abs(theirs).max():.3g}")


if __name__ == "__main__":
    main()
