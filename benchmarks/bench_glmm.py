"""The mixed-effects logistic against statsmodels' BinomialBayesMixedGLM (variational
Bayes, the GLMM statsmodels has) on a grouped_data.py yes/no file and its test mask:
random intercept and a random slope on x1 per task; fit time, AUC and log loss on the same
test rows. (GPBoost's and glmer's figures: benchmarks/peer_glmm_gpboost.py and
benchmarks/peer_glmer.R on the same file.)

    python benchmarks/bench_glmm.py /tmp/g/binary-200x60.csv
"""

import sys
import time

import numpy as np
import pandas as pd

from netscope.multitask.comparison.metrics import METRICS
from netscope.multitask.linear.mixed import MixedEffects

csv = sys.argv[1]
df = pd.read_csv(csv)
test = np.load(csv.replace(".csv", ".test.npy"))
cols = [c for c in df.columns if c.startswith("x")]
X, y = df[cols].values, df.y.values.astype(float)
g = pd.factorize(df.task)[0]
tr, te = ~test, test
auc = next(m for m in METRICS["binary"] if m.key == "auc").fn
log_loss = next(m for m in METRICS["binary"] if m.key == "log_loss").fn

start = time.perf_counter()
m = MixedEffects(loss="log_loss", random=(1,), cov="full").fit(X[tr], y[tr], g[tr])
ours = time.perf_counter() - start
p = m.predict(X[te], g[te])
print(f"netscope mixed-effects logistic (Laplace, nAGQ 1): AUC {auc(y[te], p, 1):.4f}, "
      f"log loss {log_loss(y[te], p, 1):.4f}, {ours:.2f} s")

from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM  # noqa: E402

d = df[tr].assign(g=g[tr])
start = time.perf_counter()
model = BinomialBayesMixedGLM.from_formula(
    "y ~ " + " + ".join(cols), {"g": "0 + C(g)", "slope": "0 + C(g):x1"}, d)
fit = model.fit_vb()
theirs = time.perf_counter() - start
fe = fit.fe_mean
re = dict(zip(model.vc_names, fit.vc_mean, strict=True))
eta = fe[0] + X[te] @ fe[1:]
eta += np.array([re.get(f"C(g)[{k}]", 0.0) + re.get(f"C(g)[{k}]:x1", 0.0) * x1
                 for k, x1 in zip(g[te], X[te][:, 1], strict=True)])
q = 1 / (1 + np.exp(-eta))
print(f"statsmodels BinomialBayesMixedGLM (fit_vb): AUC {auc(y[te], q, 1):.4f}, "
      f"log loss {log_loss(y[te], q, 1):.4f}, {theirs:.2f} s ({ours and theirs / ours:.0f}x)")
