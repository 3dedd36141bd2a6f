"""One analysis of one data set: every approach, returns, BC vs PAC, extrapolation.

`analyze_results` (a grid's results folder) and `analyze_csv` (an external table) both
end in `analyze_points`, which returns the JSON-ready dict that `report` prints and
writes as fits.json and that `figures` draws from. One approach failing on the data
(e.g. too few budgets for isoFLOP profiles) is recorded as {"error": message} with a
warning, so the others are still reported; if every approach fails the first error is
raised.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings

import numpy as np
import pandas as pd

from analysis import envelope
from analysis import extrapolation
from analysis import isoflop
from analysis import load
from analysis import parametric
from analysis import returns
from analysis.law import ScalingLaw

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    """What to fit and how.

    Attributes:
      metric: metric column fitted (results folders); 'bc_loss' by default.
      split: rows the metric is read from ('valid': held-out).
      return_metric: higher-is-better metric fitted as 1 - value, if present.
      param_count: 'total' or 'nonembedding' parameters as N.
      data_unit: 'examples' or 'tokens' as D.
      k: FLOPs per parameter per unit of D; None: measured as median C / (N D).
      drop_worst: highest-loss runs dropped before fitting (replication drops 5).
      n_bootstrap: bootstrap resamples for every interval.
      seed: bootstrap seed.
      ci: interval coverage.
      bins_per_decade: Approach 1's C resolution.
      budget_tol_dex: half-width of isoFLOP bins for tables without budgets.
      budget_levels: known budget levels for such tables (None: found by clustering).
      extrapolate: run the hold-out-the-largest-budget check.
      parametric: Approach 3 settings (its n_bootstrap, seed, ci are taken from here).
    """

    metric: str = "bc_loss"
    split: str = "valid"
    return_metric: str = "normalized_return"
    param_count: str = "total"
    data_unit: str = "examples"
    k: float | None = None
    drop_worst: int = 0
    keep_duplicates: bool = False  # --csv: keep rows that repeat an earlier row exactly
    n_bootstrap: int = 1000
    seed: int = 0
    ci: float = 0.95
    bins_per_decade: int = 10
    budget_tol_dex: float = 0.05
    budget_levels: tuple[float, ...] | None = None
    extrapolate: bool = True
    parametric: parametric.ParametricConfig = parametric.ParametricConfig()

    def parametric_config(self) -> parametric.ParametricConfig:
        return dataclasses.replace(self.parametric, n_bootstrap=self.n_bootstrap, seed=self.seed, ci=self.ci)


def analyze_csv(path: str, config: AnalysisConfig) -> dict:
    """Fits an external table of final runs (N, C or D, loss)."""
    k = 6.0 if config.k is None else config.k
    points = load.clean_points(load.load_csv(path, k=k, keep_duplicates=config.keep_duplicates))
    points = load.drop_worst(points, config.drop_worst)
    points = points.assign(budget=isoflop.assign_budgets(
        points["C"].to_numpy(float), config.budget_tol_dex, levels=config.budget_levels))
    source = {"kind": "csv", "path": path, "k": k, "drop_worst": config.drop_worst,
              "budgets": ("nearest of the given levels" if config.budget_levels else
                          "densest-window clustering of log10 C (isoflop.assign_budgets)")
                         + f", half-width {config.budget_tol_dex} dex",
              "runs_without_budget": int(points["budget"].isna().sum())}
    config = dataclasses.replace(config, metric="loss", split="final")
    return analyze_points(points, points, config, k=k, source=source)


def analyze_results(results_dir: str, config: AnalysisConfig) -> dict:
    """Fits a grid's results folder: the loss metric, and returns and BC vs PAC if present."""
    frame = load.load_results(results_dir)
    finals = load.clean_points(load.final_points(frame, config.metric, config.split, config.param_count,
                                                 config.data_unit), config.metric)
    finals = load.drop_worst(finals, config.drop_worst)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mid-training rows with NaN are expected, not news
        curves = load.clean_points(load.curve_points(frame, config.metric, config.split, config.param_count,
                                                     config.data_unit), config.metric)
    # k = C / (N D) per model size, measured on the runs (or the configured constant).
    k = load.measure_k(finals) if config.k is None else config.k
    source = {"kind": "results", "path": results_dir, "k": load.as_flops_per_parameter(k).median,
              "k_by_size": load.as_flops_per_parameter(k).to_dict(),
              "k_measured": config.k is None, "drop_worst": config.drop_worst}
    out = analyze_points(finals, curves, config, k=k, source=source)

    groups = returns.split_bc_pac(finals)
    if len(groups) == 2:
        out["groups"] = {}
        for name, g in groups.items():
            log.info("fitting the %s runs alone (%d)", name.upper(), len(g))
            out["groups"][name] = _approaches(g, _matching(curves, g), config, k, extrapolate=False)
    if config.return_metric in frame.columns and frame[config.return_metric].notna().any():
        log.info("fitting 1 - %s", config.return_metric)
        out["returns"] = _returns(frame, config, k)
    return out


def analyze_points(points: pd.DataFrame, curves: pd.DataFrame, config: AnalysisConfig, *, k: "float | load.FlopsPerParameter",
                   source: dict) -> dict:
    """Every approach on one set of final points (and curve points for Approach 1)."""
    start = time.perf_counter()
    out = {"source": source | {"metric": config.metric, "split": config.split, "n_runs": len(points),
                               "param_count": config.param_count, "data_unit": config.data_unit}}
    log.info("fitting all %d runs: isoFLOP profiles, envelope, L(N, D) with %d bootstrap refits", len(points),
             config.n_bootstrap)
    out |= _approaches(points, curves, config, k, extrapolate=config.extrapolate)
    out["points"] = points[["run", "N", "D", "C", "budget", "loss", "alpha", "seed"]].astype(
        {"run": str}).replace({np.nan: None}).to_dict(orient="list")
    out["runtime_s"] = time.perf_counter() - start
    return out


def _approaches(points: pd.DataFrame, curves: pd.DataFrame, config: AnalysisConfig, k: "float | load.FlopsPerParameter",
                extrapolate: bool) -> dict:
    errors: list[str] = []

    def attempt(name, fn):
        try:
            return fn()
        except ValueError as err:
            warnings.warn(f"{name} not fitted: {err}", stacklevel=3)
            errors.append(str(err))
            return err

    laws = {
        "approach1": attempt("approach 1 (envelope)", lambda: envelope.fit_envelope(
            curves, bins_per_decade=config.bins_per_decade, n_bootstrap=config.n_bootstrap,
            seed=config.seed, level=config.ci).law()),
        "approach2": attempt("approach 2 (isoFLOP)", lambda: isoflop.fit_isoflop(
            points, k, n_bootstrap=config.n_bootstrap, seed=config.seed, level=config.ci).law()),
        "approach3": attempt("approach 3 (parametric)", lambda: parametric_law(parametric.fit_parametric(
            points["N"], points["D"], points["loss"], config.parametric_config(), k=k), points)),
    }
    check = attempt("extrapolation check", lambda: extrapolation.check_extrapolation(
        points, k, config.parametric_config())) if extrapolate else None
    if len(errors) == len(laws) + (check is not None):
        raise ValueError(errors[0])
    min_loss = float(points["loss"].min()) if len(points) else None
    out = {name: (ScalingLaw.failed(name, str(law)) if isinstance(law, ValueError) else law).assessed(
        min_loss, points).to_dict() for name, law in laws.items()}
    if check is not None:
        out["extrapolation"] = {"error": str(check)} if isinstance(check, ValueError) else check.to_dict()
    return out


def parametric_law(fit: parametric.ParametricFit, points: pd.DataFrame) -> ScalingLaw:
    """Approach 3's law, recording its allocation table and band over C (for the figures)
    and its tokens per parameter at the largest budget."""
    c_max = float(points["C"].max())
    grid = np.geomspace(float(points["C"].min()) / 3, c_max * 10, 40)
    n_opt, d_opt = fit.allocate(grid)
    allocation = {"C": grid.tolist(), "N": n_opt.tolist(), "D": d_opt.tolist()}
    if fit.bootstrap is not None and len(fit.bootstrap) >= 2:
        n_boot, d_boot = fit.bootstrap_laws.allocate(grid)  # [n_bootstrap, len(grid)]
        q = [(1 - fit.ci_level) / 2 * 100, (1 + fit.ci_level) / 2 * 100]
        for name, values in (("N", n_boot), ("D", d_boot)):
            # Degenerate refits (alpha or beta -> 0) overflow; they drop out of the band.
            lo, hi = np.nanpercentile(np.where(np.isfinite(values), values, np.nan), q, axis=0)
            allocation[f"{name}_lo"], allocation[f"{name}_hi"] = lo.tolist(), hi.tolist()
    n_at, d_at = fit.allocate(c_max)
    if not (fit.alpha > 0 and fit.beta > 0):
        warnings.warn(f"approach 3: fitted alpha={fit.alpha:.3g}, beta={fit.beta:.3g}: an exponent <= 0 means the "
                      f"loss does not fall with N or D in these runs; no compute-optimal allocation (NaN)")
    return ScalingLaw(
        "approach3", loss=fit.law, refits=fit.bootstrap_laws, ci=dict(fit.ci), ci_level=fit.ci_level,
        record={"tokens_per_parameter": {"C": c_max, "N_opt": float(n_at), "D_opt": float(d_at),
                                         "ratio": float(d_at / n_at)},
                "objective": fit.objective, "n_points": fit.n_points, "n_starts": fit.n_starts,
                "n_bootstrap": fit.n_bootstrap, "seconds": fit.seconds, "allocation": allocation})


def _matching(curves: pd.DataFrame, finals: pd.DataFrame) -> pd.DataFrame:
    return curves[curves["run"].isin(set(finals["run"]))]


def _returns(frame: pd.DataFrame, config: AnalysisConfig, k: "float | load.FlopsPerParameter") -> dict:
    """The same fits on 1 - return, for all runs and for BC and PAC separately."""
    metric = config.return_metric
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not-done cells were already named once
        finals = load.final_points(frame, metric, "eval", config.param_count, config.data_unit)
    # 1 - R is positive (R >= 1 is clipped), so only NaN returns are dropped here.
    finals = load.clean_points(returns.as_loss(finals, name=metric), metric)
    curves = load.curve_points(frame, metric, "eval", config.param_count, config.data_unit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clipping along the curves was reported for the finals
        curves = load.clean_points(returns.as_loss(curves, name=metric), metric) if len(curves) else curves
    out = {"metric": metric, "transform": "loss = max(1 - value, 1e-3)",
           "points": finals[["run", "N", "D", "C", "budget", "value", "alpha"]].astype({"run": str}).to_dict(
               orient="list")}
    groups = {"all": finals} | returns.split_bc_pac(finals)
    for name, group in groups.items():
        try:
            out[name] = _approaches(group, _matching(curves, group), config, k, extrapolate=False)
        except ValueError as err:
            out[name] = {"error": str(err)}
    return out
