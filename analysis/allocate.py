"""The compute-optimal model size and data for a FLOP budget, from a fitted study.

    rows = allocate(fits, [1e13, 1e14])

For each budget C, approach 3 (the parametric L(N, D): its closed-form allocation, the
interval from its bootstrap refits) and approach 2 (the isoFLOP power laws N_opt = G C^a
and D_opt = G' C^b, the interval from their bootstrap (G, a) pairs), side by side, each
with its law's status (analysis.fit_status): an allocation from a degenerate law is
printed, but marked, never passed off as a result.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from analysis.law import read_laws


# How far outside the compute range of its runs a law is used: beyond WARN_DEX decades the
# row says how far it extrapolates; beyond MAX_DEX decades (Chinchilla extrapolated about
# 1.5 decades) it is refused: a budget of 1e-300 or 1e300 FLOPs is a typo, not a plan.
WARN_DEX, MAX_DEX = 1.0, 3.0


def fitted_compute_range(fits: Mapping[str, Any]) -> tuple[float, float] | None:
    """(lowest, highest) training FLOPs of the runs the laws were fitted on (fits.json's
    points), or None where the file does not hold them."""
    points = fits.get("points")
    values = points.get("C") if isinstance(points, Mapping) else None
    try:
        c = np.asarray([v for v in values or [] if v is not None], np.float64)
    except (TypeError, ValueError):
        return None
    c = c[np.isfinite(c) & (c > 0)]
    return (float(c.min()), float(c.max())) if len(c) else None


def extrapolation_dex(c: float, span: tuple[float, float] | None) -> float:
    """Decades of compute between `c` and the fitted range (0 inside it or without one)."""
    if span is None:
        return 0.0
    return float(max(np.log10(span[0] / c), np.log10(c / span[1]), 0.0))


def check_budget(c: float, span: tuple[float, float] | None) -> float:
    """Decades `c` lies outside the fitted range; a one-line ValueError for a budget that
    is not a positive finite number or lies more than MAX_DEX decades outside."""
    if not c > 0 or not np.isfinite(c):
        raise ValueError(f"budget={c} must be a finite number of FLOPs > 0")
    dex = extrapolation_dex(c, span)
    if dex > MAX_DEX:
        raise ValueError(f"budget={c:.3g} is {dex:.1f} decades outside the fitted compute range "
                         f"[{span[0]:.3g}, {span[1]:.3g}] FLOPs; the laws are used at most {MAX_DEX:g} decades "
                         f"beyond it")
    return dex


def allocate(fits: Mapping[str, Any], budgets: Sequence[float], level: float = 0.95) -> list[dict[str, Any]]:
    """One row per (budget, approach): N_opt and D_opt with their `level` intervals. A
    budget more than MAX_DEX decades outside the fitted compute range is a one-line
    ValueError; beyond WARN_DEX decades its rows say how far they extrapolate."""
    if not isinstance(fits, Mapping):
        raise ValueError(f"not a fits file: a JSON object of laws (from `pac fit`) is needed, got {type(fits).__name__}")
    rows = []
    laws = read_laws(fits, ("approach3", "approach2"))
    span = fitted_compute_range(fits)
    for c in budgets:
        dex = check_budget(c, span)
        first = len(rows)
        for name, label in (("approach3", "3: L(N, D)"), ("approach2", "2: isoFLOP")):
            law = laws.get(name)
            if law is None or law.error is not None:
                continue
            n, d = (float(v) for v in law.allocate(c))
            (n_lo, n_hi), (d_lo, d_hi) = law.allocation_interval(c, level)
            rows.append({"budget": c, "approach": label, "status": law.status or "ok", "N": n, "N_lo": n_lo,
                         "N_hi": n_hi, "D": d, "D_lo": d_lo, "D_hi": d_hi})
        if not rows or rows[-1]["budget"] != c:
            raise ValueError("the fits hold neither an approach 3 nor an approach 2 law to allocate with")
        for row in rows[first:]:
            row["extrapolation_dex"] = dex
    return rows


def format_rows(rows: Sequence[Mapping[str, Any]], level: float = 0.95) -> str:
    def num(x):
        return "-" if x is None or not np.isfinite(x) else f"{x:.3g}"

    lines = [f"{'budget C':>10}  {'approach':<12} {'N_opt':>9} {f'[{round(level * 100)}% interval]':>22} "
             f"{'D_opt':>9} {f'[{round(level * 100)}% interval]':>22}  status"]
    for r in rows:
        n_ci = f"[{num(r.get('N_lo'))}, {num(r.get('N_hi'))}]"
        d_ci = f"[{num(r.get('D_lo'))}, {num(r.get('D_hi'))}]"
        status = r["status"] if r["status"] == "ok" else f"{r['status'].upper()}: not a usable law (see fits.json reasons)"
        if (r.get("extrapolation_dex") or 0.0) > WARN_DEX:
            status += f"; EXTRAPOLATED {r['extrapolation_dex']:.1f} decades beyond the fitted compute"
        lines.append(f"{r['budget']:>10.3g}  {r['approach']:<12} {num(r['N']):>9} {n_ci:>22} {num(r['D']):>9} "
                     f"{d_ci:>22}  {status}")
    return "\n".join(lines)
