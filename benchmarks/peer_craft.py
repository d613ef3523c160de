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


if __name__ == "__main__":
    main()
