"""A fit that failed says so: every law in fits.json carries a status that the CLI table,
the report and the figures respect (analysis.fit_status)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import figures, fit_status, report, study_report, synthetic
from analysis.law import read_laws
from pac import cli

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "docs" / "reference_study" / "fits.json"


def _fit_csv(tmp_path, loss_of) -> dict:
    rng = np.random.default_rng(0)
    rows = []
    for c in (1e18, 1e19, 1e20, 1e21):
        for n in np.geomspace(1e7, 3e9, 8):
            rows.append({"N": n, "C": c * (1 + 0.01 * rng.standard_normal()), "loss": loss_of(n, c / (6 * n), rng)})
    pd.DataFrame(rows).to_csv(tmp_path / "runs.csv", index=False)
    assert cli.main(["fit", "--csv", str(tmp_path / "runs.csv"), "--out", str(tmp_path / "out"), "--bootstrap", "30",
                     "--drop-worst", "0", "--no-figures", "--no-extrapolation"]) == 0
    return json.loads((tmp_path / "out" / "fits.json").read_text())


def test_a_clean_law_is_ok(tmp_path):
    law = synthetic.SyntheticLaw()
    fits = _fit_csv(tmp_path, lambda n, d, rng: law.loss(n, d))
    for name in ("approach2", "approach3"):
        assert fits[name]["status"] == "ok", fits[name]["reasons"]


def test_a_loss_that_does_not_depend_on_size_is_degenerate(tmp_path, capsys):
    fits = _fit_csv(tmp_path, lambda n, d, rng: 2.0 + 0.01 * rng.standard_normal())
    capsys.readouterr()
    # No law in it: every approach is degenerate (with its reasons) or could not be fitted.
    for name in ("approach1", "approach2", "approach3"):
        assert fits[name]["status"] in ("degenerate", "failed") and fits[name]["reasons"], name
    assert fits["approach3"]["status"] == "degenerate"
    assert "DEGENERATE: not a usable law" in report.format_table(fits)


def test_the_committed_reference_study_is_flagged_with_reasons(tmp_path):
    fits = json.loads(REFERENCE.read_text())
    lowest = min(fits["points"]["loss"])
    verdicts = {name: fit_status.assess(name, fits[name], lowest) for name in ("approach1", "approach2", "approach3")}
    assert all(v["status"] == "degenerate" for v in verdicts.values())
    assert any("budget 1e+11: no interior minimum" in r for r in verdicts["approach2"]["reasons"])
    assert any("lies outside its own interval" in r for r in verdicts["approach2"]["reasons"])
    assert any(r.startswith("E = 4.69e-94 at the bottom of its range") for r in verdicts["approach3"]["reasons"])
    # Every surface: the figures do not draw the laws, the report says so first.
    flagged = fits | {name: fits[name] | verdict for name, verdict in verdicts.items()}
    assert figures.allocation_figure(flagged) is None and figures.contour_figure(flagged) is None
    assert "no law" in figures.isoflop_figure(flagged).axes[0].get_title()
    caveats = "\n".join(study_report._caveats(flagged))
    assert "DEGENERATE: isoFLOP (approach 2), all runs" in caveats and "no interior minimum" in caveats


@pytest.mark.parametrize("fit, status", [({"error": "too few runs"}, "failed"), ({}, "failed")])
def test_an_unfitted_law_is_failed(fit, status):
    assert fit_status.assess("approach3", fit)["status"] == status
    laws = read_laws({"approach3": fit})
    assert not laws or not laws["approach3"].ok  # never drawn or used as a law


def test_allocate_gives_both_approaches_with_intervals_that_cover_the_true_law(tmp_path, capsys):
    from analysis import allocate
    from analysis.parametric import ParametricLaw

    law = synthetic.SyntheticLaw()
    fits = _fit_csv(tmp_path, lambda n, d, rng: law.loss(n, d) * np.exp(0.005 * rng.standard_normal()))
    capsys.readouterr()
    budget = 3e21  # 3x past the largest fitted budget
    rows = {r["approach"]: r for r in allocate.allocate(fits, [budget])}
    assert set(rows) == {"3: L(N, D)", "2: isoFLOP"}
    true_n, _ = ParametricLaw(law.E, law.A, law.B, law.alpha, law.beta,
                              k=fits["approach3"]["k"]).allocate(budget)
    for row in rows.values():
        assert row["N_lo"] <= row["N"] <= row["N_hi"] and row["D_lo"] <= row["D"] <= row["D_hi"]
        assert row["N_lo"] <= true_n <= row["N_hi"], row  # the interval covers the true optimum
    assert cli.main(["allocate", "--fits", str(tmp_path / "out" / "fits.json"), "--budget", "3e21", "1e22"]) == 0
    out = capsys.readouterr().out
    assert "3: L(N, D)" in out and "2: isoFLOP" in out and out.count("\n") == 5
    assert cli.main(["allocate", "--fits", str(tmp_path / "out" / "fits.json"), "--budget", "-1"]) == 2
    assert "--budget=-1.0 must be a finite number of FLOPs > 0" in capsys.readouterr().err
    # Far outside the fitted compute (issue 24, item 18): marked beyond 1 decade, refused
    # beyond 3, either way.
    assert 3e21 / 10 < max(fits["points"]["C"]) <= 3e21 and min(fits["points"]["C"]) >= 1e17
    assert cli.main(["allocate", "--fits", str(tmp_path / "out" / "fits.json"), "--budget", "1e23"]) == 0
    out = capsys.readouterr().out
    assert out.count("EXTRAPOLATED 2.0 decades beyond the fitted compute") == 2, out
    assert "EXTRAPOLATED" not in "\n".join(allocate.format_rows(allocate.allocate(fits, [3e21])).splitlines())
    for budget, where in (("1e-300", "decades outside"), ("1e300", "decades outside"),
                          ("1e25", "4.0 decades outside"), ("1e12", "decades outside")):
        assert cli.main(["allocate", "--fits", str(tmp_path / "out" / "fits.json"), "--budget", budget]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and where in err and "fitted compute range" in err, err


def test_duplicated_csv_rows_are_named_and_dropped(tmp_path):
    """A CSV whose every row is repeated is one set of runs, not twice as many: the same
    fit (and intervals) as the file without the repeats, with a warning naming them."""
    from analysis import load

    law = synthetic.SyntheticLaw()
    rows = [{"N": n, "C": c, "loss": law.loss(n, c / (6 * n))}
            for c in (1e18, 1e19, 1e20) for n in np.geomspace(1e7, 3e9, 6)]
    pd.DataFrame(rows).to_csv(tmp_path / "once.csv", index=False)
    pd.DataFrame(rows + rows).to_csv(tmp_path / "twice.csv", index=False)
    with pytest.warns(UserWarning, match=r"18 rows repeat an earlier row exactly \(lines 20, 21, .*\); dropped"):
        deduplicated = load.load_csv(str(tmp_path / "twice.csv"))
    pd.testing.assert_frame_equal(deduplicated, load.load_csv(str(tmp_path / "once.csv")))
    with pytest.warns(UserWarning, match="kept"):
        assert len(load.load_csv(str(tmp_path / "twice.csv"), keep_duplicates=True)) == 36


def _profile(depth: float, noise: float) -> tuple[dict, dict]:
    """An approach-2 entry with one budget whose parabola (in log N) is `depth` deep at the
    sampled edges, and 8 points about it with alternating `noise`."""
    n = np.geomspace(1e6, 1e8, 8)
    x, mid = np.log(n), np.log(1e7)
    c2 = depth / (np.log(1e8) - mid) ** 2
    coefficients = [2.0 + c2 * mid * mid, -2 * c2 * mid, c2]
    loss = 2.0 + c2 * (x - mid) ** 2 + noise * np.array([1, -1] * 4)
    budget = {"budget": 1e15, "coefficients": coefficients, "n_min": 1e6, "n_max": 1e8, "loss_opt": 2.0,
              "n_opt": 1e7, "at_edge": False}
    fit = {"budgets": [budget, dict(budget, budget=1e16), dict(budget, budget=1e17)], "a": 0.5, "b": 0.5,
           "ci95": {"a": [0.4, 0.6], "b": [0.4, 0.6]}}
    return fit, {"N": list(n), "budget": [1e15] * 8, "loss": list(loss)}


def test_a_valley_shallower_than_twice_its_scatter_is_degenerate():
    # Issue 24, item 21: the rule behind "approach 2 degenerate" in the study's verdict.
    deep, points = _profile(depth=0.2, noise=0.01)
    assert fit_status.assess("approach2", deep, points=points) == {"status": "ok", "reasons": []}
    shallow, points = _profile(depth=0.02, noise=0.01)
    verdict = fit_status.assess("approach2", shallow, points=points)
    assert verdict["status"] == "degenerate" and len(verdict["reasons"]) == 1
    assert verdict["reasons"][0].startswith("budget 1e+15: valley depth 0.02 is within 2x the points' scatter")


@pytest.mark.parametrize("interval, reason", [
    ([0.3, 0.7], None),
    ([0.1, 1.3], "a interval [0.1, 1.3] is wider than 1"),
    ([-0.1, 0.9], "a interval [-0.1, 0.9] spans 0"),
    ([0.6, 0.7], "a = 0.5 lies outside its own interval [0.6, 0.7]"),
    (None, "a has no interval (fitted without bootstrap refits)"),
])
def test_exponent_intervals_wider_than_1_or_missing_are_degenerate(interval, reason):
    # Issue 24, items 21-22: the width rule, and a law without intervals is never "ok".
    fit = {"budgets": [{"budget": b, "at_edge": False} for b in (1e15, 1e16, 1e17)], "a": 0.5, "b": 0.5,
           "ci95": {"b": [0.4, 0.6]} | ({"a": interval} if interval else {})}
    verdict = fit_status.assess("approach2", fit)
    assert verdict["reasons"] == ([reason] if reason else []) and verdict["status"] == ("degenerate" if reason else "ok")


_INTERVALS = {"a": [0.4, 0.6], "b": [0.4, 0.6], "alpha": [0.3, 0.4], "beta": [0.3, 0.4]}
_BUDGETS = [{"budget": b, "at_edge": False} for b in (1e15, 1e16, 1e17)]


@pytest.mark.parametrize("approach, changes, reason", [
    ("approach2", {"budgets": _BUDGETS[:2]}, "2 budgets with a profile (< 3)"),
    ("approach2", {"skipped": ["1e+18: the parabola has no minimum (loss not convex in log N)"]},
     "budget 1e+18: the parabola has no minimum (loss not convex in log N)"),
    ("approach1", {"envelope": {"C": [1e18, 1e19]}}, "2 envelope points (< 3)"),
    ("approach3", {"n_points": 4}, "4 runs for 5 parameters"),
    ("approach2", {"a": float("nan")}, "a is not finite"),
    ("approach3", {"beta": None}, "beta is not finite"),
])
def test_too_few_points_a_skipped_budget_or_a_non_finite_exponent_is_degenerate(approach, changes, reason):
    # Issue 24's mutation check: each of these rules disabled alone left every other test
    # passing. The same entry without its fault is ok.
    fit = {"budgets": _BUDGETS, "envelope": {"C": [1e18, 1e19, 1e20]}, "n_points": 40, "E": 1.0,
           "a": 0.5, "b": 0.5, "alpha": 0.35, "beta": 0.35, "ci95": _INTERVALS}
    assert fit_status.assess(approach, fit, min_loss=2.0) == {"status": "ok", "reasons": []}
    assert fit_status.assess(approach, fit | changes, min_loss=2.0) == {"status": "degenerate", "reasons": [reason]}
