"""analysis.law.ScalingLaw: fits.json is its serialization, and the figures, the report
and `pac allocate` read laws through it (issue 25, item 4)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import parametric, pipeline, report, synthetic
from analysis.law import ScalingLaw, read_laws
from analysis.powerlaw import PowerLawFit, fit_power_law

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference_study" / "fits.json"
COARSE = parametric.ParametricConfig(alpha_grid=(0.5,), beta_grid=(0.5,), e_grid=(0.0,), a_grid=(5.0, 10.0),
                                     b_grid=(5.0, 10.0))


@pytest.fixture(scope="module")
def fits(tmp_path_factory) -> dict:
    """A fits dict as `pac fit --csv` writes it (a small bootstrap, a coarse grid of starts)."""
    law = synthetic.SyntheticLaw()
    rng = np.random.default_rng(0)
    rows = [{"N": n, "C": c, "loss": law.loss(n, c / (6 * n)) * np.exp(0.005 * rng.standard_normal())}
            for c in (1e18, 1e19, 1e20, 1e21) for n in np.geomspace(1e7, 3e9, 8)]
    path = tmp_path_factory.mktemp("law") / "runs.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    config = pipeline.AnalysisConfig(n_bootstrap=30, extrapolate=False, parametric=COARSE)
    return json.loads(json.dumps(report._jsonable(pipeline.analyze_csv(str(path), config))))


def test_every_law_in_fits_json_round_trips_exactly(fits):
    laws = read_laws(fits)
    assert set(laws) == {"approach1", "approach2", "approach3"}
    for name, law in laws.items():
        assert law.approach == name and law.status in ("ok", "degenerate", "failed")
        assert report._jsonable(law.to_dict()) == fits[name]
        assert list(law.to_dict()) == list(fits[name])  # the file's key order too


def test_a_file_from_before_statuses_and_samples_still_loads():
    old = json.loads(REFERENCE.read_text())
    assert "status" not in old["approach2"] and "samples" not in old["approach2"]["n_opt_fit"]
    for group in (old, *old["groups"].values()):
        laws = read_laws(group)
        assert set(laws) == {"approach1", "approach2", "approach3"}
        for law in laws.values():
            assert law.status is None and law.ok  # not assessed: used as before
            if law.n_opt is not None:  # NaN where the file holds null, as before
                fit = group[law.approach]["n_opt_fit"]
                with np.errstate(all="ignore"):  # a degenerate law may overflow, as before
                    expected = (np.nan if None in (fit["coefficient"], fit["exponent"])
                                else fit["coefficient"] * np.float64(1e12) ** fit["exponent"])
                np.testing.assert_allclose(law.allocate(1e12)[0], expected, rtol=1e-12)
        # No bootstrap in the file: the intervals are NaN, never made up.
        assert all(np.isnan(v) for pair in laws["approach2"].allocation_interval(1e12) for v in pair)


def test_approach_two_allocates_with_its_power_laws_and_their_bootstrap(fits):
    law = read_laws(fits)["approach2"]
    c = 3e21
    n, d = law.allocate(c)
    g, a = fits["approach2"]["n_opt_fit"]["coefficient"], fits["approach2"]["n_opt_fit"]["exponent"]
    assert n == pytest.approx(g * c**a, rel=1e-12) and law.a == a
    (n_lo, n_hi), (d_lo, d_hi) = law.allocation_interval(c)
    samples = np.asarray(fits["approach2"]["n_opt_fit"]["samples"])
    assert n_lo == pytest.approx(np.percentile(np.exp(samples[:, 0] + samples[:, 1] * np.log(c)), 2.5), rel=1e-12)
    assert n_lo < n < n_hi and d_lo < d < d_hi
    with pytest.raises(ValueError, match="approach 3 predicts L"):
        law.predict(1e8, 1e10)


def test_approach_three_allocates_and_predicts_with_its_parametric_law(fits):
    law = read_laws(fits)["approach3"]
    entry = fits["approach3"]
    n, d = law.allocate(entry["tokens_per_parameter"]["C"])
    assert n == pytest.approx(entry["tokens_per_parameter"]["N_opt"], rel=1e-12)
    assert law.predict(n, d) == pytest.approx(parametric.ParametricLaw.from_dict(entry).predict(n, d), rel=1e-12)
    assert law.intervals["alpha"] == tuple(entry["ci95"]["alpha"])
    (n_lo, n_hi), _ = law.allocation_interval(1e21)
    assert n_lo < law.allocate(1e21)[0] < n_hi


def test_the_power_law_band_and_the_allocation_intervals_come_from_the_same_samples():
    rng = np.random.default_rng(0)
    c = np.geomspace(1e18, 1e21, 6)
    fit = fit_power_law(c, 0.1 * c**0.5 * np.exp(0.05 * rng.standard_normal(6)), n_bootstrap=200)
    assert PowerLawFit.from_dict(json.loads(json.dumps(fit.to_dict()))) == fit
    grid = np.asarray(fit.band_x)
    log_values = np.log(fit.sample_predictions(grid))
    np.testing.assert_allclose(np.exp(np.percentile(log_values, 2.5, axis=0)), fit.band_lo, rtol=1e-12)
    np.testing.assert_allclose(fit.predict(grid), fit.coefficient * grid**fit.exponent, rtol=0)


def test_a_failed_or_degenerate_law_is_not_ok(fits):
    failed = ScalingLaw.from_dict({"error": "too few runs", "status": "failed", "reasons": ["too few runs"]},
                                  "approach3")
    assert not failed.ok and failed.to_dict() == {"error": "too few runs", "status": "failed",
                                                  "reasons": ["too few runs"]}
    degenerate = dataclasses.replace(read_laws(fits)["approach2"], status="degenerate", reasons=("why",))
    assert not degenerate.ok and degenerate.to_dict()["reasons"] == ["why"]
    assert read_laws({"approach3": {}}) == {}  # an empty entry holds no law
    with pytest.raises(TypeError, match="a law is a JSON object"):
        read_laws({"approach2": [1]})
