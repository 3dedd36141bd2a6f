"""`pac fit` / `pac figures` end to end on a synthetic grid and a small CSV."""

import dataclasses
import json
import os

import numpy as np
import pandas as pd
import pytest

from analysis import synthetic
from pac import cli

# Few bootstraps and a coarse start grid keep this fast; the CLI defaults are 1000 and
# the full grid.
FAST = ["--bootstrap", "8", "--no-extrapolation"]


@pytest.fixture(autouse=True)
def coarse_grid(monkeypatch):
    from analysis import parametric
    from analysis import pipeline
    coarse = parametric.ParametricConfig(alpha_grid=(0.5,), beta_grid=(0.5,), e_grid=(0.0,), a_grid=(5.0, 10.0),
                                         b_grid=(5.0, 10.0))
    original = pipeline.AnalysisConfig.parametric_config
    monkeypatch.setattr(pipeline.AnalysisConfig, "parametric_config",
                        lambda self: original(dataclasses.replace(self, parametric=coarse)))


def test_fit_results_dir_writes_json_table_and_figures(tmp_path, capsys):
    results = str(tmp_path / "results")
    law = synthetic.SyntheticLaw()
    synthetic.write_results(results, law, alphas=(1.0, 0.5), extra_cells={"dead": "failed"})
    assert cli.main(["fit", results, *FAST]) == 0
    out = capsys.readouterr()
    assert "Approach 3" in out.out and "alpha" in out.out
    assert "cells not done" in out.err
    # Progress reaches stderr: which runs are being fitted, and the bootstrap's size.
    assert "pac fit: fitting all" in out.err and "pac fit: fitting the BC runs alone" in out.err
    assert "pac fit: L(N, D) bootstrap:" in out.err
    fits = json.load(open(os.path.join(results, "fits.json")))
    a3 = fits["approach3"]
    for key in ("E", "A", "B", "alpha", "beta", "a", "b", "G"):
        assert key in a3 and key in a3["ci95"]
    assert a3["alpha"] == pytest.approx(law.alpha, abs=0.05)
    assert a3["beta"] == pytest.approx(law.beta, abs=0.05)
    assert fits["approach2"]["a"] == pytest.approx(law.beta / (law.alpha + law.beta), abs=0.08)
    assert set(fits["groups"]) == {"bc", "pac"}
    assert {"all", "bc", "pac"} <= set(fits["returns"])
    assert "runtime_s" in fits
    for name in ("isoflop", "allocation", "envelope", "contours", "returns"):
        for ext in ("png", "pdf"):
            path = os.path.join(results, f"{name}.{ext}")
            assert os.path.getsize(path) > 5000, path
    # Redraw without refitting into another folder.
    before = os.path.getmtime(os.path.join(results, "fits.json"))
    assert cli.main(["figures", results, "--out", str(tmp_path / "figs")]) == 0
    assert os.path.getsize(tmp_path / "figs" / "isoflop.png") > 5000
    assert os.path.getmtime(os.path.join(results, "fits.json")) == before


def test_fit_csv_with_extrapolation(tmp_path, capsys):
    rng = np.random.default_rng(0)
    law = synthetic.SyntheticLaw()
    rows = []
    for c in (1e18, 1e19, 1e20, 1e21):
        for n in np.geomspace(1e7, 3e9, 8):
            d = c / (6 * n)
            rows.append({"N": n, "C": c * (1 + 0.01 * rng.standard_normal()), "loss": law.loss(n, d)})
    pd.DataFrame(rows).to_csv(tmp_path / "runs.csv", index=False)
    out = str(tmp_path / "out")
    assert cli.main(["fit", "--csv", str(tmp_path / "runs.csv"), "--out", out, "--bootstrap", "8",
                     "--drop-worst", "0", "--no-figures"]) == 0
    fits = json.load(open(os.path.join(out, "fits.json")))
    assert len(fits["approach2"]["budgets"]) == 4
    ext = fits["extrapolation"]
    assert ext["held_out_budget"] == pytest.approx(1e21, rel=0.02)
    assert ext["loss_mape"] < 0.05
    assert "Extrapolation" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["fit"], "give either RESULTS_DIR or --csv"),
    (["fit", "--csv", "x.csv"], "--csv needs --out"),
    (["fit", "/nonexistent/results"], "results folder not found: /nonexistent/results"),
    (["fit", "--csv", "/nonexistent.csv", "--out", "/tmp/x"], "CSV file not found: /nonexistent.csv"),
    (["fit", "--csv", "/nonexistent.csv", "--out", "/tmp/x", "--bootstrap", "-1"], "--bootstrap must be >= 0"),
    (["fit", "--csv", "/nonexistent.csv", "--out", "/tmp/x", "--budgets", "1e18,abc"], "--budgets must be"),
])
def test_bad_input_one_line_errors(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_too_few_runs_is_an_error(tmp_path, capsys):
    pd.DataFrame({"N": [1e8, 2e8, 3e8], "C": [1e19, 1e19, 1e19], "loss": [3.0, 2.9, 3.1]}).to_csv(
        tmp_path / "few.csv", index=False)
    assert cli.main(["fit", "--csv", str(tmp_path / "few.csv"), "--out", str(tmp_path), "--drop-worst", "0"]) == 2
    assert "envelope fit needs" in capsys.readouterr().err
