"""Extrapolation check: fit without the largest budget, predict it.

The point of a scaling law is to predict runs one has not trained. Holding out the
largest budget and predicting its loss and compute-optimal size from the smaller ones
measures that directly, at the scale that matters most.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from analysis import isoflop, load
from analysis import parametric


@dataclasses.dataclass(frozen=True)
class ExtrapolationCheck:
    """Errors of predictions for the held-out largest budget.

    Attributes:
      held_out_budget: C of the held-out budget.
      n_train_runs, n_test_runs: runs fitted / predicted.
      loss_mape: mean |predicted - observed| / observed loss over the held-out runs
        (Approach 3 fitted on the others).
      best_loss_observed, best_loss_predicted: the held-out budget's lowest loss, and the
        fitted law's loss at its compute-optimal allocation.
      n_opt_observed: the held-out budget's own N_opt (its isoFLOP vertex, or its
        lowest-loss run if no parabola can be fitted).
      n_opt_parametric, n_opt_isoflop: N_opt predicted by Approaches 3 and 2.
      n_opt_log10_error_parametric, n_opt_log10_error_isoflop: log10(predicted/observed).
    """

    held_out_budget: float
    n_train_runs: int
    n_test_runs: int
    loss_mape: float
    best_loss_observed: float
    best_loss_predicted: float
    n_opt_observed: float
    n_opt_parametric: float
    n_opt_isoflop: float
    n_opt_log10_error_parametric: float
    n_opt_log10_error_isoflop: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_extrapolation(points: pd.DataFrame, k: "float | load.FlopsPerParameter",
                        config: parametric.ParametricConfig) -> ExtrapolationCheck:
    """Fits on all budgets but the largest and predicts the largest.

    Args:
      points: final runs with a `budget` column (at least 3 budgets).
      k: FLOPs per parameter per example.
      config: parametric fit settings (bootstrap is not used here).

    Returns:
      The errors; ValueError with fewer than 3 budgets.
    """
    budgets = np.unique(points["budget"].dropna().to_numpy(float))
    if len(budgets) < 3:
        raise ValueError(f"extrapolation check needs >= 3 budgets (2 to fit, 1 to predict), got {len(budgets)}")
    held = budgets[-1]
    test = points[points["budget"] == held]
    # Runs outside every isoFLOP bin (external tables) still inform the fit if they used
    # less compute than any held-out run.
    unbinned = points["budget"].isna() & (points["C"] < test["C"].min())
    train = points[(points["budget"] < held) | unbinned]
    fit = parametric.fit_parametric(train["N"], train["D"], train["loss"],
                                    dataclasses.replace(config, n_bootstrap=0), k=k)
    observed = test["loss"].to_numpy(float)
    predicted = fit.predict(test["N"].to_numpy(float), test["D"].to_numpy(float))
    n3, d3 = fit.allocate(held)
    with warnings.catch_warnings():
        # Edge warnings were already given by the main isoFLOP fit.
        warnings.simplefilter("ignore")
        try:
            n2 = float(isoflop.fit_isoflop(train[train["budget"].notna()], k, n_bootstrap=0).n_opt.predict(held))
        except ValueError:
            n2 = float("nan")
        try:
            last = isoflop.fit_isoflop(points[points["budget"] >= budgets[-2]], k, n_bootstrap=0).optima[-1]
            n_obs = last.n_opt if last.budget == held else float("nan")
        except ValueError:
            n_obs = float("nan")
    if not np.isfinite(n_obs):
        n_obs = float(test["N"].to_numpy(float)[np.argmin(observed)])
    return ExtrapolationCheck(
        held_out_budget=float(held), n_train_runs=len(train), n_test_runs=len(test),
        loss_mape=float(np.mean(np.abs(predicted - observed) / observed)),
        best_loss_observed=float(observed.min()), best_loss_predicted=float(fit.predict(n3, d3)),
        n_opt_observed=float(n_obs), n_opt_parametric=float(n3), n_opt_isoflop=n2,
        n_opt_log10_error_parametric=float(np.log10(n3 / n_obs)),
        n_opt_log10_error_isoflop=float(np.log10(n2 / n_obs)) if np.isfinite(n2) else float("nan"))
