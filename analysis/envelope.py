"""Approach 1: the minimum envelope of loss over compute.

Every logged point of every run is a (C, N, D, loss) sample. For each compute value the
run that reaches the lowest loss there is the best allocation at that C. In practice:
C is cut into log-spaced bins (`bins_per_decade`), each bin keeps its lowest-loss point,
and only points that beat every lower-compute bin are kept (the envelope is monotone:
more compute can always stop early). Power laws N_opt = G C^a, D_opt ∝ C^b are fitted
to the envelope points, with a bootstrap over those points for intervals.

With whole training curves this is Chinchilla's Approach 1. With final points only (an
external table) it is the same construction on fewer points. Caveat kept from the
paper: mid-training points of long cosine schedules sit above what a run sized for that
compute would reach, which biases the envelope toward small models at low C.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from analysis import powerlaw
from analysis.law import ScalingLaw


@dataclasses.dataclass(frozen=True)
class EnvelopeFit(powerlaw.AllocationLaws):
    """Approach 1's result: envelope points and power laws through them."""

    c: tuple[float, ...]
    n: tuple[float, ...]
    d: tuple[float, ...]
    loss: tuple[float, ...]
    runs: tuple[str, ...]
    n_opt: powerlaw.PowerLawFit
    d_opt: powerlaw.PowerLawFit

    def law(self) -> ScalingLaw:
        """The law, recording the envelope it was fitted to (fits.json's "approach1")."""
        return ScalingLaw("approach1", n_opt=self.n_opt, d_opt=self.d_opt, record={"envelope": {
            "C": list(self.c), "N": list(self.n), "D": list(self.d), "loss": list(self.loss), "run": list(self.runs)}})

    def to_dict(self) -> dict:
        return self.law().to_dict()


def envelope_points(points: pd.DataFrame, bins_per_decade: int = 10) -> pd.DataFrame:
    """The lowest-loss point per log-C bin, keeping only bins that improve on lower C.

    Args:
      points: (run, N, D, C, loss) rows: curve points or final points.
      bins_per_decade: resolution of the C axis.

    Returns:
      The envelope rows, sorted by C.
    """
    if bins_per_decade < 1:
        raise ValueError(f"bins_per_decade must be >= 1, got {bins_per_decade}")
    frame = points.assign(_bin=np.floor(np.log10(points["C"].to_numpy(float)) * bins_per_decade))
    best = frame.loc[frame.groupby("_bin")["loss"].idxmin()].sort_values("C")
    running_min = np.minimum.accumulate(best["loss"].to_numpy())
    # Strictly below every lower-C bin: a point that does not improve is not on the envelope.
    improves = np.concatenate([[True], best["loss"].to_numpy()[1:] < running_min[:-1]])
    return best.loc[improves].drop(columns="_bin").reset_index(drop=True)


def fit_envelope(points: pd.DataFrame, *, bins_per_decade: int = 10, n_bootstrap: int = 1000,
                 seed: int = 0, level: float = 0.95) -> EnvelopeFit:
    """Fits Approach 1.

    Args:
      points: curve (or final) points.
      bins_per_decade: C resolution of the envelope.
      n_bootstrap: resamples of the envelope points for the intervals.
      seed: resampling seed.
      level: interval coverage.

    Returns:
      The envelope and its power laws; ValueError if fewer than 3 envelope points.
    """
    env = envelope_points(points, bins_per_decade)
    if len(env) < 3 or env["N"].nunique() < 2:
        raise ValueError(
            f"envelope fit needs >= 3 envelope points with >= 2 distinct sizes, got {len(env)} points, "
            f"{env['N'].nunique()} sizes")
    c, n, d = (env[col].to_numpy(float) for col in ("C", "N", "D"))
    band = (c.min() / 3, c.max() * 10)
    n_fit = powerlaw.fit_power_law(c, n, n_bootstrap=n_bootstrap, seed=seed, level=level, band_range=band)
    d_fit = powerlaw.fit_power_law(c, d, n_bootstrap=n_bootstrap, seed=seed, level=level, band_range=band)
    return EnvelopeFit(
        c=tuple(c.tolist()), n=tuple(n.tolist()), d=tuple(d.tolist()),
        loss=tuple(env["loss"].astype(float).tolist()), runs=tuple(str(r) for r in env["run"]),
        n_opt=n_fit, d_opt=d_fit)
