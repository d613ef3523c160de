"""GPBoost 1.8 on a grouped_data.py file and its test mask: trees plus a random intercept
and a random slope on x1 per task (the generator's true structure), boosting rounds by
4-fold CV as GPBoost's documentation does; prints the score, fit time and peak memory.
Run in a separate venv: `python -m venv /tmp/gpb && /tmp/gpb/bin/pip install gpboost
pandas scikit-learn`, then `/tmp/gpb/bin/python benchmarks/peer_gpboost.py FILE.csv`.
"""

import resource
import sys
import time

import gpboost as gpb
import numpy as np
import pandas as pd

csv = sys.argv[1]
kind = "binary" if "binary" in csv else "regression"
df = pd.read_csv(csv)
test = np.load(csv.replace(".csv", ".test.npy"))
X = df[[c for c in df.columns if c.startswith("x")]].values
y = df.y.values
g = pd.factorize(df.task)[0].astype(float)
tr, te = ~test, test
new = ~np.isin(g[te], g[tr])
lik = "gaussian" if kind == "regression" else "bernoulli_logit"
params = {"learning_rate": 0.05, "max_depth": 6, "min_data_in_leaf": 20, "num_leaves": 1024,
          "verbose": 0}


def model():
    return gpb.GPModel(group_data=g[tr], group_rand_coef_data=X[tr][:, [1]],
                       ind_effect_group_rand_coef=[1], likelihood=lik)


start = time.time()
data = gpb.Dataset(X[tr], y[tr])
cv = gpb.cv(params=params, train_set=data, gp_model=model(), use_gp_model_for_validation=True,
            num_boost_round=1000, early_stopping_rounds=20, nfold=4, verbose_eval=False, seed=0)
rounds = int(np.argmin(cv[[k for k in cv if k.endswith("-mean")][0]])) + 1
booster = gpb.train(params=params, train_set=data, gp_model=model(), num_boost_round=rounds)
seconds = time.time() - start
mu = booster.predict(data=X[te], group_data_pred=g[te], group_rand_coef_data_pred=X[te][:, [1]],
                     predict_var=False, pred_latent=False)["response_mean"]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if kind == "regression":
    score = f"EV {1 - np.mean((mu - y[te]) ** 2) / np.var(y[te]):.4f}"
else:
    from sklearn.metrics import log_loss, roc_auc_score
    score = f"AUC {roc_auc_score(y[te], mu):.4f}, log loss {log_loss(y[te], mu):.4f}"
print(f"GPBoost {gpb.__version__}: {score}; {rounds} rounds; {seconds:.1f} s; peak {peak:.0f} MB")
