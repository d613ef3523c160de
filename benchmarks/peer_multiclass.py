"""Peers on a several-class grouped_data.py file and its test mask: LightGBM's multiclass
boosting with the task as a categorical feature (rounds by early stopping on a 20% share of
the training rows, as a practitioner would), and scikit-learn's multinomial logistic
regression with one-hot tasks (fixed task effects, penalty by 3-fold CV). Prints log loss,
macro one-vs-rest AUC, accuracy and fit time. Run in a venv with lightgbm and scikit-learn:
`/tmp/gpb/bin/python benchmarks/peer_multiclass.py FILE.csv`.
"""

import sys
import time
import warnings

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

warnings.simplefilter("ignore")  # the peers' deprecation notices
csv = sys.argv[1]
df = pd.read_csv(csv)
test = np.load(csv.replace(".csv", ".test.npy"))
X = df[[c for c in df.columns if c.startswith("x")]].to_numpy()
classes, y = np.unique(df.y, return_inverse=True)
g = pd.factorize(df.task)[0]
tr, te = ~test, test


def report(name: str, P: np.ndarray, seconds: float) -> None:
    print(f"{name}: log loss {log_loss(y[te], P):.4f}, AUC "
          f"{roc_auc_score(y[te], P, multi_class='ovr'):.4f}, accuracy "
          f"{accuracy_score(y[te], P.argmax(1)):.4f}; {seconds:.1f} s")


start = time.time()
frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
frame["task"] = pd.Categorical(g)
rng = np.random.default_rng(0)
inner = rng.uniform(size=tr.sum()) < 0.2
Xtr, ytr = frame[tr].reset_index(drop=True), y[tr]
model = lgb.LGBMClassifier(objective="multiclass", n_estimators=2000, learning_rate=0.05,
                           verbose=-1, random_state=0)
model.fit(Xtr[~inner], ytr[~inner], eval_set=[(Xtr[inner], ytr[inner])],
          callbacks=[lgb.early_stopping(20, verbose=False)])
rounds = model.best_iteration_
model = lgb.LGBMClassifier(objective="multiclass", n_estimators=rounds, learning_rate=0.05,
                           verbose=-1, random_state=0).fit(Xtr, ytr)
report(f"LightGBM {lgb.__version__} ({rounds} rounds)", model.predict_proba(frame[te]),
       time.time() - start)

start = time.time()
onehot = np.eye(g.max() + 1)[g]
Z = np.hstack([X, onehot])
lr = LogisticRegressionCV(Cs=10, cv=3, max_iter=5000, scoring="neg_log_loss").fit(Z[tr], y[tr])
report("multinomial logistic, one-hot tasks", lr.predict_proba(Z[te]), time.time() - start)
