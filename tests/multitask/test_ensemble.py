"""The ensemble: convex weights from inner validation rows, members reused or refit."""

import numpy as np
import pytest

from netscope.errors import NetscopeError
from netscope.multitask.ensemble import Ensemble, simplex_weights
from netscope.multitask.ridge import MeanRegularizedRidge


def test_simplex_weights_recover_a_convex_mixture():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(200, 3))
    w = simplex_weights(P, P @ np.array([0.2, 0.0, 0.8]))
    np.testing.assert_allclose(w, [0.2, 0.0, 0.8], atol=1e-6)
    w = simplex_weights(P, -P[:, 0])  # best unconstrained weight is negative: clipped
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0)


def test_fit_reuses_given_members_and_weighs_on_inner_rows(tiny):
    X, y, t = tiny
    given = MeanRegularizedRidge().fit(X, y, t)
    m = Ensemble(members=("mtl-ridge", "learned-task-covariance")).fit(
        X, y, t, fitted={"mtl-ridge": given})
    assert m.members_[0] is given
    assert m.weights_.sum() == pytest.approx(1.0) and (m.weights_ >= 0).all()
    expected = m.weights_[0] * given.predict(X, t) + m.weights_[1] * m.members_[1].predict(X, t)
    np.testing.assert_allclose(m.predict(X, t), expected)
    assert m.validation_mse_["ensemble"] <= min(m.validation_mse_[k] for k in m.members) + 1e-12


def test_unknown_member(tiny):
    X, y, t = tiny
    with pytest.raises(NetscopeError, match="members must be some of"):
        Ensemble(members=("lasso",)).fit(X, y, t)
