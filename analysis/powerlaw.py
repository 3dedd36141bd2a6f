"""Power laws y = G x^a fitted as straight lines in log-log space, with bootstrap CIs.

Used for N_opt(C) and D_opt(C) in Approaches 1 and 2. Fits are ordinary least squares
of log y on log x (as in Hoffmann et al. 2022); bootstrap resamples are given as weights
so that a thousand refits are one vectorized closed-form solve.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
    """y = coefficient * x^exponent.

    Attributes:
      coefficient: G.
      exponent: a.
      n_points: points fitted.
      ci: central `ci_level` intervals of 'exponent' and 'coefficient' (empty: none).
      ci_level: coverage of `ci` and of the band.
      band_x, band_lo, band_hi: pointwise interval of y over a grid of x (for figures).
    """

    coefficient: float
    exponent: float
    n_points: int
    ci: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    ci_level: float = 0.95
    band_x: tuple[float, ...] = ()
    band_lo: tuple[float, ...] = ()
    band_hi: tuple[float, ...] = ()
    # The bootstrap's (log G, a) pairs, for intervals of y at any x (`pac allocate`).
    samples: tuple[tuple[float, float], ...] = ()

    @classmethod
    def from_dict(cls, fitted: Mapping[str, Any]) -> "PowerLawFit":
        """The inverse of `to_dict` (a fits.json "n_opt_fit" / "d_opt_fit" entry); NaN
        (null in the file) where a value could not be fitted. Fields added to the format
        over time (intervals, band, samples) are empty where a file lacks them."""
        level, ci = ci_block(fitted)
        band = fitted.get("band") or {}
        return cls(coefficient=as_float(fitted["coefficient"]), exponent=as_float(fitted["exponent"]),
                   n_points=int(fitted.get("n_points") or 0),
                   ci={name: tuple(as_float(v) for v in pair) for name, pair in ci.items() if len(pair) == 2},
                   ci_level=level, band_x=tuple(as_float(v) for v in band.get("x") or ()),
                   band_lo=tuple(as_float(v) for v in band.get("lo") or ()),
                   band_hi=tuple(as_float(v) for v in band.get("hi") or ()),
                   samples=tuple((as_float(g), as_float(a)) for g, a in fitted.get("samples") or ()))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """G x^a: the one place a fitted power law is evaluated."""
        return self.coefficient * np.asarray(x, dtype=np.float64) ** self.exponent

    def sample_predictions(self, x: np.ndarray) -> np.ndarray:
        """G x^a of every bootstrap (log G, a) pair: shape (samples,) + shape(x)."""
        return np.exp(log_curves(np.asarray(self.samples, np.float64).reshape(-1, 2), x))

    def to_dict(self) -> dict:
        return {"coefficient": self.coefficient, "exponent": self.exponent, "n_points": self.n_points,
                ci_key(self.ci_level): {k: list(v) for k, v in self.ci.items()},
                "band": {"x": list(self.band_x), "lo": list(self.band_lo), "hi": list(self.band_hi)},
                "samples": [list(pair) for pair in self.samples]}


def log_curves(samples: np.ndarray, x: np.ndarray) -> np.ndarray:
    """log y = log G + a log x for each (log G, a) row of `samples`: shape (B,) + shape(x)."""
    log_x = np.log(np.asarray(x, dtype=np.float64))
    log_g, a = (samples[:, i].reshape((-1,) + (1,) * log_x.ndim) for i in (0, 1))
    return log_g + a * log_x


def as_float(value: Any) -> float:
    """A fits.json number: null (NaN or inf when written) reads as NaN."""
    return float("nan") if value is None else float(value)


def ci_block(fitted: Mapping[str, Any]) -> tuple[float, dict[str, Any]]:
    """(coverage, {name: [lo, hi]}) of an entry's interval block ('ci95': 0.95); (0.95, {})
    where it has none."""
    for key, value in fitted.items():
        if key.startswith("ci") and key[2:].isdigit() and isinstance(value, Mapping):
            return int(key[2:]) / 100, dict(value)
    return 0.95, {}


def ci_key(level: float) -> str:
    """JSON key of an interval: 'ci95' for 95% coverage."""
    return f"ci{round(level * 100):d}"


def weighted_lines(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares lines y = c + m x for a batch, in closed form.

    Args:
      x, y: (..., n) points (broadcastable with w).
      w: (..., n) non-negative weights (bootstrap multiplicities; 0 drops a point).

    Returns:
      (intercepts c, slopes m), NaN where fewer than 2 distinct x carry weight.
    """
    sw = np.sum(w, axis=-1)
    with np.errstate(all="ignore"):
        mx = np.sum(w * x, axis=-1) / sw
        my = np.sum(w * y, axis=-1) / sw
        dx = x - mx[..., None]
        sxx = np.sum(w * dx * dx, axis=-1)
        slope = np.sum(w * dx * (y - my[..., None]), axis=-1) / sxx
    degenerate = ~(sxx > 1e-12 * np.maximum(np.sum(w * x * x, axis=-1), 1e-300))
    slope = np.where(degenerate, np.nan, slope)
    return np.where(degenerate, np.nan, my - slope * mx), slope


def fit_power_law(x: np.ndarray, y: np.ndarray, *, n_bootstrap: int = 0, seed: int = 0,
                  level: float = 0.95, samples: np.ndarray | None = None,
                  band_range: tuple[float, float] | None = None) -> PowerLawFit:
    """Fits y = G x^a by least squares in log-log space.

    Args:
      x, y: positive values, at least 2 distinct x.
      n_bootstrap: refits on resamples of the points for CIs (ignored if `samples`).
      seed: resampling seed.
      level: CI coverage.
      samples: optional (B, 2) precomputed bootstrap (log G, a) pairs (e.g. from a
        bootstrap over the runs behind each point, as Approach 2 does).
      band_range: x range of the CI band (default: data range widened 3x each way).

    Returns:
      The fit.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"power-law fit needs two equal-length 1-D arrays, got shapes {x.shape}, {y.shape}")
    bad = ~(np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0))
    if bad.any():
        raise ValueError(f"power-law fit needs finite positive values; bad at points {np.flatnonzero(bad).tolist()}")
    if len(np.unique(x)) < 2:
        raise ValueError(f"power-law fit needs at least 2 distinct x values, got {len(np.unique(x))}")
    lx, ly = np.log(x), np.log(y)
    intercept, slope = weighted_lines(lx, ly, np.ones_like(lx))
    if samples is None and n_bootstrap > 0 and len(x) > 2:
        rng = np.random.default_rng(seed)
        w = rng.multinomial(len(x), np.full(len(x), 1.0 / len(x)), size=n_bootstrap).astype(float)
        samples = np.stack(weighted_lines(lx[None], ly[None], w), axis=-1)
    ci: dict[str, tuple[float, float]] = {}
    band_x: tuple[float, ...] = ()
    band_lo: tuple[float, ...] = ()
    band_hi: tuple[float, ...] = ()
    if samples is not None:
        samples = samples[np.all(np.isfinite(samples), axis=1)]
    if samples is not None and len(samples) >= 2:
        q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
        ci = {"exponent": tuple(float(v) for v in np.percentile(samples[:, 1], q)),
              "coefficient": tuple(float(v) for v in np.exp(np.percentile(samples[:, 0], q)))}
        lo, hi = band_range or (x.min() / 3, x.max() * 3)
        grid = np.geomspace(lo, hi, 40)
        curves = log_curves(samples, grid)
        band_x = tuple(float(v) for v in grid)
        band_lo = tuple(float(v) for v in np.exp(np.percentile(curves, q[0], axis=0)))
        band_hi = tuple(float(v) for v in np.exp(np.percentile(curves, q[1], axis=0)))
    kept = tuple((float(g), float(a)) for g, a in samples) if samples is not None and len(samples) >= 2 else ()
    return PowerLawFit(coefficient=float(np.exp(intercept)), exponent=float(slope), n_points=len(x),
                       ci=ci, ci_level=level, band_x=band_x, band_lo=band_lo, band_hi=band_hi, samples=kept)


class AllocationLaws:
    """What approaches 1 and 2 share: the laws N_opt ~ C^a and D_opt ~ C^b (their fits are
    dataclasses with `n_opt` and `d_opt` fields; `law()` gives the analysis.law.ScalingLaw)."""

    n_opt: "PowerLawFit"
    d_opt: "PowerLawFit"

    @property
    def a(self) -> float:
        return self.n_opt.exponent

    @property
    def b(self) -> float:
        return self.d_opt.exponent
