"""Approach 2: isoFLOP profiles.

For each compute budget C, the final losses of the runs trained with that budget are a
valley in log N; a parabola in ln N fitted to them has its vertex at N_opt(C). Power laws
N_opt = G C^a and D_opt = C / (k N_opt) ∝ C^b are then fitted over the budgets.
Intervals come from a bootstrap over runs, resampled within each budget (so every
resample still has all budgets), refitting the parabolas and the power law each time.

Grids written by this project carry their budget per cell. External tables of final
runs (Chinchilla's) only have each run's C; `assign_budgets` groups them into isoFLOP
bins first.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from analysis import load, powerlaw
from analysis.law import ScalingLaw


@dataclasses.dataclass(frozen=True)
class BudgetOptimum:
    """The isoFLOP parabola of one budget and its vertex.

    Attributes:
      budget: C of the profile.
      n_opt, d_opt, loss_opt: vertex: N_opt, D_opt = C / (k N_opt), fitted loss there.
      n_runs: runs in the profile.
      n_min, n_max: smallest and largest N sampled.
      coefficients: (c0, c1, c2) of loss = c0 + c1 ln N + c2 (ln N)^2.
      at_edge: the optimum is not bracketed by the sampled sizes.
    """

    budget: float
    n_opt: float
    d_opt: float
    loss_opt: float
    n_runs: int
    n_min: float
    n_max: float
    coefficients: tuple[float, float, float]
    at_edge: bool

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"coefficients": list(self.coefficients)}


@dataclasses.dataclass(frozen=True)
class IsoFlopFit(powerlaw.AllocationLaws):
    """Approach 2's result: per-budget optima and the power laws over budgets."""

    optima: tuple[BudgetOptimum, ...]
    n_opt: powerlaw.PowerLawFit
    d_opt: powerlaw.PowerLawFit
    skipped: tuple[str, ...]
    n_bootstrap: int

    def law(self) -> ScalingLaw:
        """The law, recording the profiles it was fitted to (fits.json's "approach2")."""
        return ScalingLaw("approach2", n_opt=self.n_opt, d_opt=self.d_opt, record={
            "budgets": [o.to_dict() for o in self.optima], "skipped": list(self.skipped),
            "n_bootstrap": self.n_bootstrap})

    def to_dict(self) -> dict:
        return self.law().to_dict()


def assign_budgets(c: np.ndarray, tol_dex: float = 0.05, min_runs: int = 4, min_separation_dex: float = 0.2,
                   levels: tuple[float, ...] | None = None) -> np.ndarray:
    """Groups runs into isoFLOP bins by their compute, for tables without budgets.

    With explicit `levels`, each run goes to the nearest level within `tol_dex` (in
    log10 C). Otherwise levels are found by greedy densest-window clustering in log10 C:
    the window of half-width `tol_dex` holding the most unassigned runs becomes a bin
    (level: the median log10 C of its runs), and so on while a window holds `min_runs`
    runs. A window centred within `min_separation_dex` of a level already taken is not a
    new budget (isoFLOP grids space budgets by >= 1.6x; Chinchilla's by >= 1.67x), so
    its runs stay unassigned, as do runs far from every dense level (e.g. runs of a
    token sweep rather than an isoFLOP sweep); Approach 2 leaves them out. On
    Chinchilla's extracted runs this finds its nine budgets 6e18 ... 3e21 (read ~5% low
    from the figure) plus one denser cloud of non-isoFLOP runs near 1.7e20.

    Args:
      c: FLOPs per run.
      tol_dex: half-width of a bin in log10 C.
      min_runs: smallest bin kept.
      min_separation_dex: smallest distance between two budget levels, in log10 C.
      levels: known budget levels (FLOPs), if any.

    Returns:
      The bin level (FLOPs) of each run, NaN where unassigned.
    """
    log_c = np.log10(np.asarray(c, dtype=np.float64))
    out = np.full(len(log_c), np.nan)
    if levels is not None:
        known = np.log10(np.asarray(levels, dtype=np.float64))
        nearest = np.argmin(np.abs(log_c[:, None] - known[None]), axis=1)
        close = np.abs(log_c - known[nearest]) <= tol_dex
        out[close] = np.asarray(levels, dtype=np.float64)[nearest[close]]
        return out
    free = np.isfinite(log_c)
    taken: list[float] = []
    while free.sum() >= min_runs:
        idx = np.flatnonzero(free)
        near = np.abs(log_c[idx][:, None] - log_c[idx][None, :]) <= tol_dex
        counts = near.sum(axis=1)
        best = int(np.argmax(counts))
        if counts[best] < min_runs:
            break
        members = idx[near[best]]
        centre = float(np.median(log_c[members]))
        free[members] = False  # assigned, or ruled out as too close to a budget
        if all(abs(centre - t) >= min_separation_dex for t in taken):
            taken.append(centre)
            out[members] = 10 ** centre
    return out


def fit_parabolas(log_n: np.ndarray, loss: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares parabolas loss = c0 + c1 x + c2 x^2 for a batch of weights.

    Args:
      log_n: (n,) ln N.
      loss: (n,) losses.
      weights: (B, n) run weights (bootstrap multiplicities).

    Returns:
      (B, 3) coefficients (c0, c1, c2); NaN where fewer than 3 distinct sizes carry weight.
    """
    centre = np.mean(log_n)
    x = log_n - centre  # centred for a well-conditioned solve
    design = np.stack([np.ones_like(x), x, x * x], axis=1)
    gram = np.einsum("bn,ni,nj->bij", weights, design, design)
    rhs = np.einsum("bn,ni,n->bi", weights, design, loss)
    distinct = np.array([len(np.unique(x[w > 0])) for w in weights])
    ok = distinct >= 3
    coef = np.full((len(weights), 3), np.nan)
    if ok.any():
        coef[ok] = np.linalg.solve(gram[ok], rhs[ok][..., None])[..., 0]
    # Back to coefficients of ln N itself.
    c0, c1, c2 = coef[:, 0], coef[:, 1], coef[:, 2]
    return np.stack([c0 - c1 * centre + c2 * centre**2, c1 - 2 * c2 * centre, c2], axis=1)


def vertex(coefficients: np.ndarray) -> np.ndarray:
    """ln N at the parabolas' minima; NaN where the parabola opens downwards (no minimum)."""
    c1, c2 = coefficients[..., 1], coefficients[..., 2]
    with np.errstate(all="ignore"):
        return np.where(c2 > 0, -c1 / (2 * c2), np.nan)


def fit_isoflop(points: pd.DataFrame, k: "float | load.FlopsPerParameter", *, n_bootstrap: int = 1000, seed: int = 0,
                level: float = 0.95, min_runs: int = 3) -> IsoFlopFit:
    """Fits Approach 2 to final runs that carry a `budget`.

    Args:
      points: points frame (N, loss, budget columns; see `load`).
      k: FLOPs per parameter per example, a number or per model size (D_opt = C / (k(N_opt) N_opt)).
      n_bootstrap: resamples of the runs within each budget (0: no intervals).
      seed: resampling seed.
      level: interval coverage.
      min_runs: budgets with fewer distinct sizes are skipped (3 fix a parabola).

    Returns:
      The per-budget optima and power laws. Warns for budgets skipped or whose optimum
      is not bracketed by the sampled sizes; raises ValueError with fewer than 2 budgets.
    """
    k_of = load.as_flops_per_parameter(k)
    usable = points[np.isfinite(points["budget"].to_numpy(float))]
    if usable.empty:
        raise ValueError("isoFLOP fit needs runs with a budget; none of the runs has one")
    rng = np.random.default_rng(seed)
    optima, skipped, boot_log_n, budgets = [], [], [], []
    for budget, group in usable.groupby("budget", sort=True):
        log_n = np.log(group["N"].to_numpy(float))
        loss = group["loss"].to_numpy(float)
        label = f"{budget:.3g}"
        if len(np.unique(log_n)) < min_runs:
            skipped.append(f"{label}: {len(np.unique(log_n))} distinct sizes < {min_runs}")
            continue
        coef = fit_parabolas(log_n, loss, np.ones((1, len(log_n))))[0]
        x_opt = vertex(coef)
        if not np.isfinite(x_opt):
            skipped.append(f"{label}: the parabola has no minimum (loss not convex in log N)")
            continue
        lowest = log_n[np.argmin(loss)]
        at_edge = bool(x_opt < log_n.min() or x_opt > log_n.max()
                       or lowest in (log_n.min(), log_n.max()))
        if at_edge:
            warnings.warn(
                f"isoFLOP budget {label}: optimum N={np.exp(x_opt):.3g} is at the edge of the sampled "
                f"sizes [{np.exp(log_n.min()):.3g}, {np.exp(log_n.max()):.3g}]; add larger/smaller models",
                stacklevel=2)
        n_opt = float(np.exp(x_opt))
        optima.append(BudgetOptimum(
            budget=float(budget), n_opt=n_opt, d_opt=float(budget / (k_of(n_opt) * n_opt)),
            loss_opt=float(coef[0] + coef[1] * x_opt + coef[2] * x_opt**2), n_runs=len(group),
            n_min=float(np.exp(log_n.min())), n_max=float(np.exp(log_n.max())),
            coefficients=tuple(float(v) for v in coef), at_edge=at_edge))
        budgets.append(float(budget))
        if n_bootstrap > 0:
            w = rng.multinomial(len(log_n), np.full(len(log_n), 1.0 / len(log_n)), size=n_bootstrap)
            boot_log_n.append(vertex(fit_parabolas(log_n, loss, w.astype(float))))
    if skipped:
        warnings.warn(f"isoFLOP budgets skipped: {skipped}", stacklevel=2)
    if len(optima) < 2:
        raise ValueError(f"isoFLOP fit needs at least 2 budgets with a fitted optimum, got {len(optima)}")

    c = np.array(budgets)
    n_opt = np.array([o.n_opt for o in optima])
    d_opt = np.array([o.d_opt for o in optima])
    n_samples = d_samples = None
    if n_bootstrap > 0:
        log_n_boot = np.stack(boot_log_n, axis=1)  # (B, budgets)
        valid = np.isfinite(log_n_boot)
        # Budgets whose resample lost its minimum drop out of that resample's line.
        intercept, slope = powerlaw.weighted_lines(
            np.log(c)[None], np.where(valid, log_n_boot, 0.0), valid.astype(float))
        n_samples = np.stack([intercept, slope], axis=1)
        # D_opt = C / (k(N_opt) N_opt) per resample, with k at that resample's N_opt.
        with np.errstate(all="ignore"):
            log_d_boot = np.log(c)[None] - np.log(k_of(np.exp(np.where(valid, log_n_boot, 0.0)))) - log_n_boot
        d_samples = np.stack(powerlaw.weighted_lines(
            np.log(c)[None], np.where(valid, log_d_boot, 0.0), valid.astype(float)), axis=1)
    band = (c.min() / 3, c.max() * 10)
    n_fit = powerlaw.fit_power_law(c, n_opt, samples=n_samples, level=level, band_range=band)
    d_fit = powerlaw.fit_power_law(c, d_opt, samples=d_samples, level=level, band_range=band)
    return IsoFlopFit(optima=tuple(optima), n_opt=n_fit, d_opt=d_fit, skipped=tuple(skipped),
                      n_bootstrap=n_bootstrap)
