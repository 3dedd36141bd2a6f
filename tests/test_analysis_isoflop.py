"""Approach 2 and 1 pieces: parabola vertices, budgets, power laws, envelope."""


import numpy as np
import pandas as pd
import pytest

from analysis import envelope
from analysis import isoflop
from analysis import powerlaw


def test_parabola_vertex_recovery():
    log_n = np.log(np.geomspace(1e7, 1e9, 9))
    x_star = np.log(8e7)
    loss = 2.0 + 0.05 * (log_n - x_star) ** 2
    coef = isoflop.fit_parabolas(log_n, loss, np.ones((1, 9)))
    assert np.exp(isoflop.vertex(coef)[0]) == pytest.approx(8e7, rel=1e-8)


def test_power_law_exponent_recovery_with_ci():
    rng = np.random.default_rng(0)
    c = np.geomspace(1e18, 1e22, 12)
    y = 0.3 * c**0.52 * np.exp(0.02 * rng.standard_normal(12))
    fit = powerlaw.fit_power_law(c, y, n_bootstrap=300, seed=0)
    assert fit.exponent == pytest.approx(0.52, abs=0.01)
    lo, hi = fit.ci["exponent"]
    assert lo < 0.52 < hi
    assert len(fit.band_x) == len(fit.band_lo) == 40
    with pytest.raises(ValueError, match="2 distinct x"):
        powerlaw.fit_power_law(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="finite positive"):
        powerlaw.fit_power_law(np.array([1.0, -2.0]), np.ones(2))


def _isoflop_points(budgets=(1e18, 1e19, 1e20), a=0.5, g=0.1, k=6.0, edge=False):
    rows = []
    for c in budgets:
        n_opt = g * c**a
        sizes = n_opt * np.geomspace(1 / 8, 8, 7) * (8 if edge and c == budgets[-1] else 1)
        for n in sizes:
            rows.append({"run": len(rows), "N": n, "D": c / (k * n), "C": c, "budget": c,
                         "loss": 2.0 + 0.04 * np.log(n / n_opt) ** 2, "alpha": 1.0, "seed": 0})
    return pd.DataFrame(rows)


def test_isoflop_recovers_exponents():
    fit = isoflop.fit_isoflop(_isoflop_points(), k=6.0, n_bootstrap=50)
    assert fit.a == pytest.approx(0.5, abs=1e-6)
    assert fit.b == pytest.approx(0.5, abs=1e-6)
    assert fit.n_opt.coefficient == pytest.approx(0.1, rel=1e-5)
    for o in fit.optima:
        assert o.n_opt * o.d_opt * 6.0 == pytest.approx(o.budget)
    assert "ci95" in fit.to_dict()


def test_isoflop_warns_at_edge_and_fails_with_one_budget():
    with pytest.warns(UserWarning, match="edge of the sampled sizes"):
        isoflop.fit_isoflop(_isoflop_points(edge=True), k=6.0, n_bootstrap=0)
    with pytest.raises(ValueError, match="at least 2 budgets"):
        isoflop.fit_isoflop(_isoflop_points(budgets=(1e18,)), k=6.0, n_bootstrap=0)
    with pytest.raises(ValueError, match="needs runs with a budget"):
        isoflop.fit_isoflop(_isoflop_points().assign(budget=np.nan), k=6.0)


def test_assign_budgets_clusters_and_separates():
    rng = np.random.default_rng(0)
    levels = [6e18, 1e19, 3e19]
    c = np.concatenate([lv * 10 ** rng.uniform(-0.02, 0.02, 8) for lv in levels] + [np.array([2e19, 5e20])])
    out = isoflop.assign_budgets(c)
    assert len(np.unique(out[np.isfinite(out)])) == 3
    assert np.isnan(out[-2:]).all()  # stragglers stay unassigned
    np.testing.assert_allclose(np.unique(out[:24]), levels, rtol=0.06)
    given = isoflop.assign_budgets(c, levels=tuple(levels))
    assert set(given[:24]) == set(levels)


def test_envelope_is_monotone_and_recovers_slope():
    rows = []
    # Runs whose final points lie on N_opt = 0.1 C^0.5 with the lowest loss at each C.
    for c in np.geomspace(1e17, 1e21, 9):
        n_opt = 0.1 * c**0.5
        for f in (0.5, 1.0, 2.0):
            rows.append({"run": len(rows), "N": n_opt * f, "D": c / (6 * n_opt * f), "C": c,
                         "loss": 3.0 - 0.1 * np.log10(c) + 0.05 * abs(np.log(f)), "budget": np.nan})
    fit = envelope.fit_envelope(pd.DataFrame(rows), n_bootstrap=50)
    assert fit.a == pytest.approx(0.5, abs=1e-6)
    assert np.all(np.diff(fit.loss) < 0)
    with pytest.raises(ValueError, match="envelope fit needs"):
        envelope.fit_envelope(pd.DataFrame(rows[:3]), n_bootstrap=0)
