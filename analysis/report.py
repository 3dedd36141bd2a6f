"""fits.json (written atomically) and the plain-text table `pac fit` prints."""

from __future__ import annotations

import json
import math
import os

from analysis.law import ScalingLaw, read_laws
from models.helpers import write_atomic

FITS_FILE = "fits.json"


def write_json(path: str, data: dict) -> None:
    """Writes `data` to `path` as strict JSON (NaN as null), atomically (models.helpers.write_atomic)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomic(path, json.dumps(_jsonable(data), indent=1, allow_nan=False) + "\n")


def read_json(path: str) -> dict:
    if not os.path.isfile(path):
        raise OSError(f"no fits file at {path}")
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err.msg} at line {err.lineno})") from None


def _jsonable(value):
    """NaN/inf become null (strict JSON); numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _num(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.4g}"


def _ci(intervals: dict, name: str) -> str:
    lo_hi = intervals.get(name)
    return f"[{_num(lo_hi[0])}, {_num(lo_hi[1])}]" if lo_hi and len(lo_hi) == 2 else ""


def format_table(fits: dict, title: str = "") -> str:
    """A readable summary of one analysis dict (as written to fits.json)."""
    lines = []
    src = fits.get("source", {})
    if title or src:
        lines.append(title or f"{src.get('path', '')}: {src.get('n_runs', '?')} runs, metric "
                              f"{src.get('metric', '?')} ({src.get('split', '?')}), k = {_num(src.get('k'))}"
                              + (f", {src['drop_worst']} highest-loss runs dropped" if src.get("drop_worst") else ""))
    lines += _approach_lines(fits)
    ext = fits.get("extrapolation")
    if ext:
        lines.append("Extrapolation (fit without the largest budget, predict it):")
        if "error" in ext:
            lines.append(f"  not run: {ext['error']}")
        else:
            lines.append(
                f"  C = {_num(ext['held_out_budget'])}: loss MAPE {100 * ext['loss_mape']:.2f}%, best loss "
                f"{_num(ext['best_loss_observed'])} observed vs {_num(ext['best_loss_predicted'])} predicted; "
                f"N_opt {_num(ext['n_opt_observed'])} observed vs {_num(ext['n_opt_parametric'])} (approach 3), "
                f"{_num(ext['n_opt_isoflop'])} (approach 2)")
    for name, group in fits.get("groups", {}).items():
        lines.append(f"--- {name.upper()} runs only ---")
        lines += _approach_lines(group)
    ret = fits.get("returns")
    if ret:
        for name in ("all", "bc", "pac"):
            if name in ret:
                lines.append(f"--- 1 - {ret['metric']}, {name} ---")
                lines += _approach_lines(ret[name]) if "error" not in ret[name] else [f"  {ret[name]['error']}"]
    if "runtime_s" in fits:
        lines.append(f"runtime {fits['runtime_s']:.1f} s")
    return "\n".join(lines)


def _status_line(law: ScalingLaw) -> list[str]:
    """A fitted law's verdict (analysis.fit_status): nothing when ok."""
    if law.ok or law.error is not None:
        return []
    return [f"  ** {law.status.upper()}: not a usable law: " + "; ".join(law.reasons) + " **"]


def _approach_lines(fits: dict) -> list[str]:
    lines = []
    laws = read_laws(fits)
    a3 = laws.get("approach3")
    if a3 is not None:
        lines.append("Approach 3, L(N, D) = E + A/N^alpha + B/D^beta (95% bootstrap CI):")
        if a3.error is not None:
            lines.append(f"  not fitted: {a3.error}")
        else:
            for name in ("E", "A", "B", "alpha", "beta", "a", "b", "G"):
                lines.append(f"  {name:<6}{_num(float(getattr(a3.loss, name))):>12}  {_ci(a3.intervals, name)}")
            tpp = a3.record.get("tokens_per_parameter", {})
            lines.append(f"  ({a3.record['n_points']} runs, best of {a3.record['n_starts']} starts, "
                         f"{a3.record['n_bootstrap']} bootstrap refits; at C = {_num(tpp.get('C'))}: N_opt "
                         f"{_num(tpp.get('N_opt'))}, D_opt {_num(tpp.get('D_opt'))}, D/N {_num(tpp.get('ratio'))})")
            lines += _status_line(a3)
    for key, label in (("approach1", "Approach 1 (envelope)"), ("approach2", "Approach 2 (isoFLOP)")):
        law = laws.get(key)
        if law is None:
            continue
        if law.error is not None:
            lines.append(f"{label}: not fitted: {law.error}")
            continue
        extra = (f", {len(law.record['budgets'])} budgets" if "budgets" in law.record
                 else f", {len(law.record['envelope']['C'])} points")
        lines.append(f"{label}: N_opt ∝ C^a, a = {_num(law.a)} {_ci(law.intervals, 'a')}; "
                     f"D_opt ∝ C^b, b = {_num(law.b)} {_ci(law.intervals, 'b')}{extra}")
        lines += _status_line(law)
    return lines
