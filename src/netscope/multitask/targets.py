"""What kind of target a data set has: the one object that losses, metrics, scaling and
pictures read, so no family branches on the kind by itself (the links: linear/glm.py).

- ``regression``: any number; least squares; standardized for fitting, scored in its units.
- ``binary``: two classes, coded 0/1 in ``TaskData.y`` (``TaskData.classes`` names them);
  models predict P(y = 1) through a logistic link; log loss.
- ``count``: whole numbers >= 0; models predict the mean through a log link; Poisson
  deviance.
- ``multiclass``: K >= 3 classes coded 0..K-1; models predict an (n, K) matrix of class
  probabilities (rows sum to 1); log loss of the true class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netscope.errors import NetscopeError

EPS = 1e-15  # probabilities are clipped to [EPS, 1 - EPS] inside log losses


@dataclass(frozen=True)
class TargetKind:
    name: str
    noun: str  # how the report names it
    primary: str  # the metric that ranks the models (lower is better)
    standardize: bool  # the protocols scale the target for fitting
    loss_name: str  # each row's loss (``unit_loss``), as the pictures name it

    def unit_loss(self, y: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """Each row's loss: squared error, Bernoulli or multinomial log loss (``mu`` an
        (n, K) probability matrix), or Poisson deviance."""
        y, mu = np.asarray(y, np.float64), np.asarray(mu, np.float64)
        if self.name == "multiclass":
            p = mu[np.arange(y.size), y.astype(np.int64)]
            return -np.log(np.clip(p, EPS, 1.0))
        if self.name == "binary":
            p = np.clip(mu, EPS, 1 - EPS)
            return -(y * np.log(p) + (1 - y) * np.log1p(-p))
        if self.name == "count":
            m = np.maximum(mu, 1e-300)
            with np.errstate(divide="ignore", invalid="ignore"):
                term = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / m), 0.0)
            return 2.0 * (term - (y - m))
        return (y - mu) ** 2


KINDS: dict[str, TargetKind] = {k.name: k for k in (
    TargetKind("regression", "a number", "mse", True, "MSE"),
    TargetKind("binary", "yes/no (two classes)", "log_loss", False, "log loss"),
    TargetKind("count", "a count (whole numbers >= 0)", "poisson_deviance", False, "deviance"),
    TargetKind("multiclass", "one of several classes", "log_loss", False, "log loss"),
)}

# an estimator's ``loss`` parameter -> the kind of target it fits (its inverse link is
# ``linear/glm.mean_of``)
LOSS_KIND = {"squared_error": "regression", "log_loss": "binary", "poisson": "count",
             "multinomial": "multiclass"}


def of_loss(loss: str) -> TargetKind:
    return KINDS[LOSS_KIND[loss]]


def kind(name: str) -> TargetKind:
    if name not in KINDS:
        raise NetscopeError(f"target kind must be one of auto, {', '.join(KINDS)}; "
                            f"got {name!r}.")
    return KINDS[name]
