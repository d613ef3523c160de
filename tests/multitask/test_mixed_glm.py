"""The mixed-effects logistic and Poisson models against lme4's glmer (Laplace, nAGQ = 1)
on fixed generated data, and what they recover and beat on grouped data."""

import numpy as np
import pytest
import torch

from netscope.multitask.linear.mixed import MixedEffects


def glmm_data(kind="binary"):
    """30 groups x 40 rows; random intercept (SD 0.8) and slope on x1 (SD 0.4). The same
    seed wrote the CSV that lme4 fitted (see the numbers below)."""
    rng = np.random.default_rng(2024)
    T, n = 30, 40
    x = rng.normal(size=(T * n, 2))
    t = np.repeat(np.arange(T), n)
    b0, b1 = rng.normal(0, 0.8, T), rng.normal(0, 0.4, T)
    eta = -0.4 + 0.9 * x[:, 0] - 0.5 * x[:, 1] + b0[t] + b1[t] * x[:, 0]
    if kind == "binary":
        y = (rng.uniform(size=T * n) < 1 / (1 + np.exp(-eta))).astype(float)
    else:
        y = rng.poisson(np.exp(0.5 * eta)).astype(float)
    return x, y, t


# lme4 1.1 glmer(y ~ x1 + x2 + (1 + x1 | g), bobyqa with rhoend = 1e-10), on glmm_data()
GLMER = {
    "binary": ((-0.1834037441, 1.0973583516, -0.5173164585),
               ((0.9282499955, 0.1271914740), (0.1271914740, 0.1350834716))),
    "count": ((-0.09739237583, 0.46132139979, -0.25943638506),
              ((0.19647233696, 0.04850588927), (0.04850588927, 0.02710549690))),
}


@pytest.mark.parametrize("kind, loss, tol", [("binary", "log_loss", 2e-3),
                                             ("count", "poisson", 1e-4)])
def test_equals_glmer(kind, loss, tol):
    """Fixed effects and covariance agree with glmer; where they differ, the Laplace
    deviance here is at least as low as at glmer's estimates (a flat optimum)."""
    from netscope.multitask.linear.mixed_glm import laplace_beta, make_data

    x, y, t = glmm_data(kind)
    m = MixedEffects(loss=loss, cov="full", random=(0,)).fit(x, y, t)
    fixed, cov = GLMER[kind]
    np.testing.assert_allclose(m.fixed_effects_[[-1, 0, 1]], fixed, atol=tol)
    np.testing.assert_allclose(m.random_cov_, cov, atol=tol)
    data = make_data(np.hstack([np.ones((len(y), 1)), x]), y, t, np.array([0, 1]), 30, loss)

    def deviance(beta, sigma):
        L = torch.linalg.cholesky(torch.tensor(sigma, dtype=torch.float64))
        u0 = torch.zeros(30, 2, dtype=torch.float64)
        return float(laplace_beta(data, L, torch.tensor(beta, dtype=torch.float64), u0)[0])

    ours = deviance(tuple(m.fixed_effects_[[-1, 0, 1]]), m.random_cov_)
    assert ours <= deviance(fixed, cov) + 1e-6


def test_logistic_recovers_the_intercept_variance_and_beats_per_task_and_pooled():
    from netscope.multitask.comparison.metrics import score
    from netscope.multitask.linear.ridge import PooledRidge, RidgePerTask
    from netscope.multitask.targets import KINDS

    rng = np.random.default_rng(5)
    T, n = 150, 40
    x = rng.normal(size=(T * n, 2))
    t = np.repeat(np.arange(T), n)
    eta = 0.3 + x @ np.array([1.0, -0.7]) + rng.normal(0, 1.0, T)[t]
    y = (rng.uniform(size=T * n) < 1 / (1 + np.exp(-eta))).astype(float)
    m = MixedEffects(loss="log_loss", random="intercept").fit(x, y, t)
    assert m.random_cov_[0, 0] == pytest.approx(1.0, abs=0.25)
    test = np.arange(T * n) % 4 == 0
    losses = {}
    for est in (MixedEffects(loss="log_loss", random="intercept"),
                RidgePerTask(loss="log_loss"), PooledRidge(loss="log_loss")):
        est.fit(x[~test], y[~test], t[~test])
        losses[type(est).__name__] = score(KINDS["binary"], y[test], est.predict(x[test], t[test]),
                                           t[test], T).values["log_loss"]
    assert losses["MixedEffects"] < min(losses["RidgePerTask"], losses["PooledRidge"])
    new = m.predict(x[:5], ["new"] * 5)  # a new task: the fixed effects through the link
    fe = m.fixed_effects_
    np.testing.assert_allclose(new, 1 / (1 + np.exp(-(x[:5] @ fe[:-1] + fe[-1]))), rtol=1e-12)


def test_poisson_recovers_the_intercept_variance():
    rng = np.random.default_rng(6)
    T, n = 150, 30
    x = rng.normal(size=(T * n, 1))
    t = np.repeat(np.arange(T), n)
    c = rng.poisson(np.exp(0.5 + 0.4 * x[:, 0] + rng.normal(0, 0.6, T)[t]))
    m = MixedEffects(loss="poisson", random="intercept").fit(x, c, t)
    assert m.random_cov_[0, 0] == pytest.approx(0.36, abs=0.08)
    assert m.fixed_effects_[0] == pytest.approx(0.4, abs=0.05)
