"""Whether a fitted law is a law: every approach's entry in fits.json gets a status.

  ok          the fit's checks pass;
  degenerate  it was fitted, but what it says cannot be used: `reasons` say why;
  failed      it could not be fitted at all (its `error`).

The checks (what a reader of a scaling-law paper would check before trusting a number):
  - too few points for the law (fewer than MIN_POINTS budgets or envelope points);
  - an isoFLOP profile whose vertex lies outside the model sizes sampled at its budget
    (no interior minimum: the allocation is extrapolated, not measured), a budget whose
    profile is not convex (skipped by the fit), or one whose valley is shallower than
    FLAT_DEPTH x its points' scatter about the parabola (a vertex fitted to noise);
  - an exponent without an interval, or whose interval spans 0 (the sign is not known)
    or is wider than MAX_INTERVAL_WIDTH (the value is not known);
  - an estimate outside its own interval (the bootstrap refits disagree with the fit);
  - approach 3's irreducible loss E at the bottom of its range (E < E_FLOOR x the lowest
    loss: the fit traded E away for a power law that bends the other way).
Figures draw only 'ok' laws; the CLI table and the report print every status.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from analysis import powerlaw

MIN_POINTS = 3
MAX_INTERVAL_WIDTH = 1.0
E_FLOOR = 1e-3
FLAT_DEPTH = 2.0

# The exponents each approach is judged on.
_EXPONENTS = {"approach1": ("a", "b"), "approach2": ("a", "b"), "approach3": ("alpha", "beta", "a", "b")}


def _interval(fit: Mapping[str, Any], name: str) -> tuple[float, float] | None:
    pair = powerlaw.ci_block(fit)[1].get(name)
    if not pair or len(pair) != 2 or any(x is None or not math.isfinite(x) for x in pair):
        return None
    return float(pair[0]), float(pair[1])


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _flat_profile(budget: Mapping[str, Any], points: Mapping[str, Any]) -> str | None:
    """Why a budget's isoFLOP valley is noise, or None: its depth (the parabola at the
    nearer sampled edge minus its minimum) against the points' scatter about it."""
    n, c, loss = (np.asarray(points[k], float) for k in ("N", "budget", "loss"))
    chosen = np.isclose(c, budget["budget"], rtol=1e-9) & np.isfinite(loss)
    if chosen.sum() <= 3:
        return None
    c0, c1, c2 = budget["coefficients"]
    parabola = lambda x: c0 + c1 * x + c2 * x * x  # noqa: E731 - in log N, as isoflop fits it
    x = np.log(n[chosen])
    scatter = float(np.sqrt(np.sum((loss[chosen] - parabola(x)) ** 2) / (chosen.sum() - 3)))
    depth = min(parabola(np.log(budget["n_min"])), parabola(np.log(budget["n_max"]))) - budget["loss_opt"]
    if depth < FLAT_DEPTH * scatter:
        return (f"budget {_fmt(budget['budget'])}: valley depth {_fmt(depth)} is within {FLAT_DEPTH:g}x the "
                f"points' scatter {_fmt(scatter)} (a vertex fitted to noise)")
    return None


def assess(approach: str, fit: Mapping[str, Any], min_loss: float | None = None,
           points: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The status of one approach's fits.json entry: {"status": ..., "reasons": [...]}.
    `points` (N, budget, loss columns) lets approach 2's profiles be checked for flatness."""
    if not fit or "error" in fit:
        return {"status": "failed", "reasons": [str((fit or {}).get("error", "not fitted"))]}
    reasons: list[str] = []
    if approach == "approach2":
        budgets = fit.get("budgets", [])
        if len(budgets) < MIN_POINTS:
            reasons.append(f"{len(budgets)} budgets with a profile (< {MIN_POINTS})")
        reasons += [f"budget {skipped}" for skipped in fit.get("skipped", [])]
        for b in budgets:
            if b.get("at_edge"):
                reasons.append(f"budget {_fmt(b['budget'])}: no interior minimum (vertex N = {_fmt(b['n_opt'])} "
                               f"outside the sampled {_fmt(b['n_min'])}-{_fmt(b['n_max'])})")
            elif points is not None and (flat := _flat_profile(b, points)):
                reasons.append(flat)
    if approach == "approach1":
        n = len(fit.get("envelope", {}).get("C", []))
        if n < MIN_POINTS:
            reasons.append(f"{n} envelope points (< {MIN_POINTS})")
    if approach == "approach3":
        if fit.get("n_points", 0) < 5:
            reasons.append(f"{fit.get('n_points', 0)} runs for 5 parameters")
        if min_loss is not None and fit.get("E") is not None and fit["E"] < E_FLOOR * min_loss:
            reasons.append(f"E = {_fmt(fit['E'])} at the bottom of its range (lowest loss {_fmt(min_loss)})")
    for name in _EXPONENTS.get(approach, ()):
        value, interval = fit.get(name), _interval(fit, name)
        if value is None or not math.isfinite(value):
            reasons.append(f"{name} is not finite")
            continue
        if interval is None:  # no bootstrap refits: nothing says the value is known
            reasons.append(f"{name} has no interval (fitted without bootstrap refits)")
            continue
        lo, hi = interval
        if lo <= 0 <= hi:
            reasons.append(f"{name} interval [{_fmt(lo)}, {_fmt(hi)}] spans 0")
        elif hi - lo > MAX_INTERVAL_WIDTH:
            reasons.append(f"{name} interval [{_fmt(lo)}, {_fmt(hi)}] is wider than {MAX_INTERVAL_WIDTH:g}")
        if not lo <= value <= hi:
            reasons.append(f"{name} = {_fmt(value)} lies outside its own interval [{_fmt(lo)}, {_fmt(hi)}]")
    return {"status": "degenerate" if reasons else "ok", "reasons": reasons}

