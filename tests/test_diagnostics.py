"""The learner's diagnostics on hand cases: rank correlation, weight ESS, Q spread."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from harness import diagnostics


def test_spearman_matches_scipy_and_ignores_monotone_transforms():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3, 50)), rng.normal(size=(3, 50))
    y[0] = x[0] ** 3  # a monotone function of x: rank correlation exactly 1
    ours = np.asarray(diagnostics.spearman(jnp.asarray(x), jnp.asarray(y)))
    reference = [stats.spearmanr(a, b).statistic for a, b in zip(x, y)]
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    assert ours[0] == pytest.approx(1.0)
    assert float(diagnostics.spearman(jnp.arange(5.0), -jnp.arange(5.0))) == pytest.approx(-1.0)
    assert float(diagnostics.spearman(jnp.arange(5.0), jnp.ones(5))) == 0.0  # constant side: defined as 0
    ties = jnp.array([1.0, 2.0, 2.0, 3.0, 1.0])
    np.testing.assert_allclose(diagnostics.ranks(ties), stats.rankdata(np.asarray(ties)) - 1)


def test_weight_ess_and_q_spread():
    q = jnp.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]])
    uniform = jnp.full((2, 4), 0.25)
    one_hot = jnp.array([[0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    out = diagnostics.critic_and_weight_diagnostics(q, uniform, jnp.zeros(2))
    assert float(out["weights_ess"]) == pytest.approx(1.0)
    assert float(out["q_spread"]) == pytest.approx(np.std([1, 2, 3, 4]) / 2)  # mean over the two states
    assert "q_mc_rank_corr" not in out  # only with Monte-Carlo returns
    out = diagnostics.critic_and_weight_diagnostics(q, one_hot, jnp.array([1.0, 2.0]), jnp.array([5.0, 7.0]))
    assert float(out["weights_ess"]) == pytest.approx(0.25)
    assert float(out["q_mc_rank_corr"]) == pytest.approx(1.0)
