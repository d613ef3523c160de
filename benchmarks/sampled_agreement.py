"""How much a sampled method's map depends on its seed: for each photo, the method run with
four seeds, the mean pairwise correlation of the maps (and of the signed attributions), on
EfficientNet-Lite0 at the registry's defaults unless given:

    python benchmarks/sampled_agreement.py [--photos 4] [--seeds 4] [--methods a,b]
"""

from __future__ import annotations

import argparse
import itertools
import warnings

import numpy as np
from peer_timing import lite0_photos

from netscope.vision.methods.registry import explain

CASES = (("gradient-shap", {}), ("shapley-sampling", {}), ("kernel-shap", {}),
         ("lime", {}), ("smoothgrad", {}), ("sscam", {"top_k": 32, "samples": 8}),
         ("smoothgradcam++", {}))


def mean_correlation(rows: list[np.ndarray]) -> float:
    pairs = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in itertools.combinations(rows, 2)]
    return float(np.nanmean(pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--methods", default=",".join(n for n, _ in CASES))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    lm, x = lite0_photos(args.photos)
    t = lm.model(x).argmax(1).tolist()
    print(f"{'method':18} {'maps: mean pairwise corr per photo':>40}")
    for name, settings in (c for c in CASES if c[0] in args.methods.split(",")):
        runs = [explain(name, lm.model, x, t, seed=s, **settings) for s in range(args.seeds)]
        per_photo = [mean_correlation([r.maps[i].detach().numpy() for r in runs])
                     for i in range(len(x))]
        print(f"{name:18} {' '.join(f'{c:.3f}' for c in per_photo):>40}", flush=True)


if __name__ == "__main__":
    main()
