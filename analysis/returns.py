"""Higher-is-better metrics (normalized return) and the BC vs PAC split.

The scaling fits all assume "lower is better, bounded below" (a loss). A normalized
return R (0 = random policy, 1 = best return in the dataset) is turned into the
regret-like 1 - R, clipped away from 0 because log(1 - R) appears in every fit and a
policy can match or beat the best dataset return (R >= 1).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

BC_ALPHA = 1.0  # alpha == 1 is pure behavioural cloning (design.md section 3)
BOOTSTRAP_SAMPLES = 10_000


def bootstrap_ci(values, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> list[float]:
    """95% percentile bootstrap interval of the mean over `values` (seeds, resampled with
    replacement). With one value the interval is that value: callers say "1 seed"."""
    values = np.asarray(values, np.float64)
    if len(values) < 2:
        return [float(values.mean()), float(values.mean())]
    means = np.random.default_rng(seed).choice(values, (samples, len(values))).mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def method_of(alpha) -> np.ndarray:
    """'BC' where alpha == 1, else 'PAC'."""
    return np.where(np.isclose(np.asarray(alpha, float), BC_ALPHA), "BC", "PAC")


def return_scaling(index: pd.DataFrame, loss: str = "valid_bc_loss", value: str = "normalized_return") -> pd.DataFrame:
    """The paper's return scaling, per budget and method (BC, PAC): the model size with the
    lowest held-out loss (mean over seeds), its loss and its return as mean [95% bootstrap
    interval over seeds], the mean half-width of each run's interval over evaluation episodes,
    and the seed count. One row per (budget, method); empty without
    finished cells that have both columns."""
    done = index[(index["status"] == "done")] if "status" in index else index
    if done.empty or loss not in done or value not in done:
        return pd.DataFrame()
    done = done.assign(method=method_of(done["alpha"]))
    episode = f"{value}_episode_ci95"
    rows = []
    for (budget, method), group in done.groupby(["budget_flops", "method"], sort=True):
        by_size = group.groupby("preset")
        best = by_size[loss].mean().idxmin()
        chosen = by_size.get_group(best)
        returns = chosen[value].dropna().to_numpy(float)
        n = len(returns)
        ci = bootstrap_ci(returns) if n else [np.nan, np.nan]
        rows.append({"budget": float(budget), "method": method, "preset": best,
                     "params": int(chosen["params"].iloc[0]) if "params" in chosen else None,
                     "loss": float(chosen[loss].mean()), "return": float(returns.mean()) if n else np.nan,
                     "return_ci95": ci if n >= 2 else None, "seeds": n,
                     # The evaluation's own noise: mean half-width of each run's 95% interval over episodes.
                     "episode_ci95": (float(chosen[episode].mean()) if episode in chosen and chosen[episode].notna().any()
                                      else None)})
    return pd.DataFrame(rows)


def as_loss(points: pd.DataFrame, floor: float = 1e-3, name: str = "normalized_return") -> pd.DataFrame:
    """Replaces a higher-is-better `loss` column R by max(1 - R, floor).

    Args:
      points: points frame whose `loss` column holds R.
      floor: smallest 1 - R kept (a warning counts the runs clipped).
      name: metric name for the warning.

    Returns:
      The frame with `loss` = 1 - R (clipped) and the original in `value`.
    """
    if not floor > 0:
        raise ValueError(f"floor must be > 0, got {floor}")
    value = points["loss"].to_numpy(float)
    regret = 1.0 - value
    clipped = np.isfinite(regret) & (regret < floor)
    if clipped.any():
        warnings.warn(f"{int(clipped.sum())} runs have {name} >= {1 - floor:g}; 1 - {name} clipped to {floor:g}",
                      stacklevel=2)
    return points.assign(value=value, loss=np.where(clipped, floor, regret))


def split_bc_pac(points: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """{'bc': alpha == 1 rows, 'pac': alpha < 1 rows}, only the groups that have rows."""
    alpha = points["alpha"].to_numpy(float)
    groups = {"bc": points[np.isclose(alpha, BC_ALPHA)], "pac": points[alpha < BC_ALPHA - 1e-9]}
    return {name: g.reset_index(drop=True) for name, g in groups.items() if len(g)}
