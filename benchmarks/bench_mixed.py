"""netscope's mixed-effects model against statsmodels' MixedLM: the same model (REML,
random intercept and random slopes with a full covariance) on the training rows of school
split 1, in this one process; fit time and agreement.

statsmodels is a reference, not a dependency (`pip install statsmodels`, in the dev extra).
Its fit grows steeply with the number of random effects, so the comparison uses the three
student-level slopes of VR band and gender (4 random effects); netscope's default model
(intercept + every within-school feature: 19 random effects) is timed as well.

    python benchmarks/bench_mixed.py [--data-dir DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from netscope.data.school import load_school, load_school_split
from netscope.multitask.linear.linalg import independent_columns
from netscope.multitask.linear.mixed import MixedEffects
from netscope.multitask.protocols import prepare
from netscope.perf import configure

SLOPES = ("gender_female", "vr_band_1", "vr_band_2")


def best_of(repeats: int, fn):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(configure())
    import statsmodels.api as sm

    data = load_school(args.data_dir)
    prep = prepare(data, load_school_split(1, data, args.data_dir), "train")
    X, y, t = prep.X_train, prep.y_train, prep.t_train
    names = [n for n, k in zip(data.feature_names, prep.features.keep, strict=True) if k]
    D = np.hstack([np.ones((len(y), 1)), X])
    keep = independent_columns(D.T @ D)
    slopes = tuple(names.index(s) for s in SLOPES)

    ours_s, ours = best_of(args.repeats, lambda: MixedEffects(random=slopes).fit(X, y, t))
    exog_re = np.hstack([np.ones((len(y), 1)), X[:, list(slopes)]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        ref = sm.MixedLM(y, D[:, keep], groups=t, exog_re=exog_re).fit(reml=True,
                                                                       method=["lbfgs"])
        sm_s = time.perf_counter() - start
    pred_gap = np.abs(ours.predict(X, t) - ref.fittedvalues).max()
    cov_gap = np.abs(ours.random_cov_ - np.asarray(ref.cov_re)).max()
    print(f"same model: REML, intercept + {len(slopes)} random slopes ({', '.join(SLOPES)}), "
          f"full covariance; {len(y)} rows, {data.n_tasks} schools, {len(keep)} fixed effects")
    print(f"  netscope    {ours_s:8.3f} s (best of {args.repeats})")
    print(f"  statsmodels {sm_s:8.3f} s (one fit)")
    print(f"  speed-up    {sm_s / ours_s:8.1f}x")
    print(f"  agreement: max |prediction difference| {pred_gap:.2e} (standardized target), "
          f"max |random-effects covariance difference| {cov_gap:.2e}")
    print(f"  REML log-likelihood: netscope {-ours.deviance_ / 2:.1f} (converged: "
          f"{ours.converged_}), statsmodels {ref.llf:.1f} (converged: {ref.converged}); "
          f"where statsmodels stops early the higher likelihood is the better fit")
    full_s, full = best_of(args.repeats, lambda: MixedEffects().fit(X, y, t))
    print(f"netscope default (intercept + {len(full.random_columns_) - 1} slopes, full "
          f"covariance): {full_s:.3f} s per split")


if __name__ == "__main__":
    main()
