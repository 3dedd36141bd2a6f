"""Reading results into tidy tables, and the "points" a fit consumes.

Two sources:
- a results folder written by the grid (`<dir>/index.csv` + `<dir>/<cell>/metrics.csv`,
  the layout contract in the module docs of `load_results`), read by `load_results` into
  one row per (cell, logged step, split);
- a plain CSV of final runs (columns N, C or D, loss; Chinchilla's own `Model Size`,
  `Training FLOP`, `loss` also accepted), read by `load_csv`.

Every fit then works on a *points* frame: one row per run (or per logged step, for the
envelope) with columns `run`, `N`, `D`, `C`, `budget` (NaN if unknown), `loss` (the
quantity fitted, lower is better), `alpha`, `seed`. Rows that cannot be fitted (NaN,
non-positive) are dropped by `clean_points` with a warning naming them, never silently.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import warnings

import numpy as np
import pandas as pd

INDEX_REQUIRED: tuple[str, ...] = (
    "cell", "preset", "params", "params_nonembedding", "budget_flops", "alpha", "seed", "steps", "status")
METRICS_REQUIRED: tuple[str, ...] = ("step", "split", "flops", "examples", "tokens")
POINT_COLUMNS: tuple[str, ...] = ("run", "N", "D", "C", "budget", "loss", "alpha", "seed")
# Accepted spellings of each column of an external CSV, first match wins.
CSV_ALIASES: dict[str, tuple[str, ...]] = {
    "N": ("N", "Model Size", "params", "parameters"),
    "C": ("C", "Training FLOP", "flops", "FLOPs"),
    "D": ("D", "tokens", "Tokens", "examples"),
    "loss": ("loss", "Loss", "final_loss"),
}


def load_results(results_dir: str) -> pd.DataFrame:
    """Reads a results folder into one tidy frame.

    Layout: `index.csv` has one row per cell (cell, preset, params, params_nonembedding,
    budget_flops, alpha, seed, steps, status, ...); `<cell>/metrics.csv` has rows (step,
    split in train|valid|eval, flops, examples, tokens, metric columns...).

    Args:
      results_dir: the folder.

    Returns:
      One row per (cell, step, split) with the index columns renamed to the analysis
      vocabulary (N, N_nonembedding, budget) and `C` = cumulative FLOPs, `D` = examples,
      plus every metric and every extra index column. Cells without a metrics file are
      absent (a warning names done cells that lack one); the full index is kept in
      `frame.attrs["index"]`.
    """
    index_path = os.path.join(results_dir, "index.csv")
    if not os.path.isdir(results_dir):
        raise OSError(f"results folder not found: {results_dir}")
    if not os.path.isfile(index_path):
        raise OSError(f"no index.csv in {results_dir} (expected the grid's results layout)")
    index = pd.read_csv(index_path)
    missing = [c for c in INDEX_REQUIRED if c not in index.columns]
    if missing:
        raise ValueError(f"{index_path} lacks columns {missing}; required: {list(INDEX_REQUIRED)}")
    frames, no_metrics = [], []
    for row in index.itertuples(index=False):
        path = os.path.join(results_dir, str(row.cell), "metrics.csv")
        if not os.path.isfile(path):
            if row.status == "done":
                no_metrics.append(str(row.cell))
            continue
        metrics = read_metrics(path)
        lacking = [c for c in METRICS_REQUIRED if c not in metrics.columns]
        if lacking:
            raise ValueError(f"{path} lacks columns {lacking}; required: {list(METRICS_REQUIRED)}")
        metrics.insert(0, "cell", str(row.cell))
        frames.append(metrics)
    if no_metrics:
        warnings.warn(f"cells marked done but without metrics.csv, ignored: {no_metrics}", stacklevel=2)
    index = index.assign(cell=index["cell"].astype(str)).rename(columns={
        "params": "N", "params_nonembedding": "N_nonembedding", "budget_flops": "budget"})
    if not frames:
        raise ValueError(f"no cell in {results_dir} has a metrics.csv")
    metrics = pd.concat(frames, ignore_index=True).rename(columns={"flops": "C"})
    metrics["D"] = metrics["examples"]
    # A column both files have (index.csv's `normalized_return` is the final eval row's) is
    # taken from metrics.csv: merged twice it would come out as _x/_y and vanish by name.
    shared = [c for c in index.columns if c != "cell" and c in metrics.columns]
    frame = index.drop(columns=shared).merge(metrics, on="cell", how="inner", validate="one_to_many")
    # Cells without metrics (pending, failed early) have no rows; keep the whole index so
    # that fits can still name them.
    frame.attrs["index"] = index
    return frame


def read_metrics(path: str) -> pd.DataFrame:
    """A cell's metrics.csv, checked line by line: every row the run writes ends with a
    newline and has the header's number of fields, so a last line without its newline
    (cut short by a kill: `5.1533` read as `5.1`) or a row of another width is damaged. Those
    rows are dropped with a warning naming the file and line, never read as numbers; an
    empty or binary file is a one-line ValueError naming it."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text CSV (undecodable byte at offset {err.start})") from None
    if "\x00" in text:
        raise ValueError(f"{path}: not a text CSV (NUL bytes)")
    lines = text.split("\n")
    if not lines[0].strip():
        raise ValueError(f"{path}: empty metrics file (no header row)")
    width = len(next(csv.reader([lines[0]])))
    damaged = []
    if lines[-1] != "":  # the last row lacks its newline: cut short mid-write
        damaged.append(len(lines))
        lines = lines[:-1]
    kept = [lines[0]]
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        if len(next(csv.reader([line]))) != width:
            damaged.append(number)
        else:
            kept.append(line)
    if damaged:
        warnings.warn(f"{path}: dropped {len(damaged)} damaged rows (cut short or of another width than the header): "
                      f"lines {sorted(damaged)[:10]}", stacklevel=3)
    try:
        return pd.read_csv(io.StringIO("\n".join(kept) + "\n"))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: unreadable metrics file ({str(err).strip().splitlines()[0]})") from None


def final_points(frame: pd.DataFrame, metric: str = "bc_loss", split: str = "valid",
                 param_count: str = "total", data_unit: str = "examples") -> pd.DataFrame:
    """One point per finished cell: `metric` at the cell's last `split` row that has it.

    Args:
      frame: from `load_results`.
      metric: column to fit (its value goes to `loss`; transform higher-is-better metrics
        with `returns.as_loss`).
      split: 'valid' (held-out losses), 'eval' (returns) or 'train'.
      param_count: 'total' or 'nonembedding' parameters as N.
      data_unit: 'examples' or 'tokens' as D.

    Returns:
      A points frame (POINT_COLUMNS plus `cell`, `preset`, `step`). Only `status == done`
      cells are used; a warning names the others.
    """
    _check_choice("param_count", param_count, ("total", "nonembedding"))
    _check_choice("data_unit", data_unit, ("examples", "tokens"))
    if metric not in frame.columns:
        raise ValueError(f"metric {metric!r} not in the results; available: {_metric_columns(frame)}")
    cells = frame.attrs.get("index", frame.drop_duplicates("cell"))
    not_done = cells.loc[cells["status"] != "done", ["cell", "status"]]
    if len(not_done):
        names = [f"{c} ({s})" for c, s in not_done.itertuples(index=False)]
        warnings.warn(f"{len(names)} cells not done, left out of final-value fits: {names}", stacklevel=2)
    rows = frame[(frame["status"] == "done") & (frame["split"] == split) & frame[metric].notna()]
    if rows.empty:
        raise ValueError(f"no done cell has {metric!r} on {split!r} rows")
    last = rows.sort_values(["cell", "step"]).groupby("cell", sort=True).tail(1)
    return _to_points(last, metric, param_count, data_unit)


def curve_points(frame: pd.DataFrame, metric: str = "bc_loss", split: str = "valid",
                 param_count: str = "total", data_unit: str = "examples") -> pd.DataFrame:
    """Every logged `split` row of every cell (any status): the training curves.

    The envelope (Approach 1) uses whole curves, so partial runs still contribute.
    """
    if metric not in frame.columns:
        raise ValueError(f"metric {metric!r} not in the results; available: {_metric_columns(frame)}")
    rows = frame[(frame["split"] == split) & frame[metric].notna() & (frame["C"] > 0)]
    return _to_points(rows, metric, param_count, data_unit)


def load_csv(path: str, k: float = 6.0, keep_duplicates: bool = False) -> pd.DataFrame:
    """Reads an external table of final runs into a points frame.

    Args:
      path: CSV with N and loss and C or D (see CSV_ALIASES for accepted names).
      k: FLOPs per parameter per token: D = C / (k N) when only C is given, and
        C = k N D when only D is given.
      keep_duplicates: rows repeating an earlier row exactly (N, C or D, loss) are one
        run counted twice, which would narrow every bootstrap interval: they are dropped
        with a warning naming them, unless kept on purpose.

    Returns:
      A points frame; `run` is the row number in the file, `budget` is NaN.
    """
    if not os.path.isfile(path):
        raise OSError(f"CSV file not found: {path}")
    if not k > 0:
        raise ValueError(f"k (FLOPs per parameter per token) must be > 0, got {k}")
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: empty CSV file (no header row)") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text CSV (undecodable byte at offset {err.start})") from None
    except pd.errors.ParserError as err:
        raise ValueError(f"{path}: not a readable CSV ({(str(err).strip().splitlines() or [''])[0]})") from None
    found = {key: next((c for c in names if c in table.columns), None) for key, names in CSV_ALIASES.items()}
    if found["N"] is None or found["loss"] is None or (found["C"] is None and found["D"] is None):
        raise ValueError(
            f"{path} needs columns N (or 'Model Size'), loss, and C (or 'Training FLOP') or D; "
            f"has {list(table.columns)}")
    repeated = table.duplicated(subset=[c for c in found.values() if c is not None])
    if repeated.any():
        rows = (np.flatnonzero(repeated.to_numpy()) + 2).tolist()  # file line numbers (header = 1)
        shown = ", ".join(map(str, rows[:8])) + (", ..." if len(rows) > 8 else "")
        action = "kept (--keep-duplicates)" if keep_duplicates else "dropped (--keep-duplicates keeps them)"
        warnings.warn(f"{path}: {len(rows)} rows repeat an earlier row exactly (lines {shown}); {action}",
                      stacklevel=2)
        if not keep_duplicates:
            table = table[~repeated.to_numpy()].reset_index(drop=True)
    n = pd.to_numeric(table[found["N"]], errors="coerce").to_numpy(float)
    c = pd.to_numeric(table[found["C"]], errors="coerce").to_numpy(float) if found["C"] else None
    d = pd.to_numeric(table[found["D"]], errors="coerce").to_numpy(float) if found["D"] else None
    with np.errstate(all="ignore"):
        if d is None:
            d = c / (k * n)
        if c is None:
            c = k * n * d
    return pd.DataFrame({
        "run": np.arange(len(table)), "N": n, "D": d, "C": c, "budget": np.nan,
        "loss": pd.to_numeric(table[found["loss"]], errors="coerce").to_numpy(float),
        "alpha": np.nan, "seed": np.nan})


def clean_points(points: pd.DataFrame, what: str = "loss") -> pd.DataFrame:
    """Drops rows whose N, D, C or loss is NaN or <= 0, warning with their run ids.

    Args:
      points: a points frame.
      what: name of the fitted quantity for the message.

    Returns:
      The rows that can be fitted (raises ValueError if none).
    """
    values = points[["N", "D", "C", "loss"]].to_numpy(float)
    bad = ~np.all(np.isfinite(values) & (values > 0), axis=1)
    if bad.any():
        dropped = points.loc[bad, "run"].tolist()
        shown = dropped[:20] + (["..."] if len(dropped) > 20 else [])
        warnings.warn(f"dropped {int(bad.sum())} rows with NaN or non-positive N/D/C/{what}: runs {shown}",
                      stacklevel=2)
    kept = points.loc[~bad].reset_index(drop=True)
    if kept.empty:
        raise ValueError(f"no usable rows: every row has NaN or non-positive N, D, C or {what}")
    return kept


def drop_worst(points: pd.DataFrame, count: int) -> pd.DataFrame:
    """Drops the `count` highest-loss runs (the replication drops 5 Chinchilla outliers)."""
    if count < 0:
        raise ValueError(f"drop_worst must be >= 0, got {count}")
    if count == 0:
        return points
    if count >= len(points):
        raise ValueError(f"drop_worst={count} would drop all {len(points)} runs")
    return points.sort_values("loss", kind="stable").iloc[:-count].sort_values("run").reset_index(drop=True)


@dataclasses.dataclass(frozen=True)
class FlopsPerParameter:
    """k = C / (N D), FLOPs per parameter per example, as a function of model size N.

    Measured per model size where runs exist (a Perceiver's k differs between sizes: its
    cost is not only its parameters), interpolated in log N between them and held
    constant beyond; a constant where only one number is known (e.g. 6 for a CSV).
    """

    log_n: tuple[float, ...]
    k: tuple[float, ...]

    @classmethod
    def constant(cls, k: float) -> "FlopsPerParameter":
        return cls((0.0,), (float(k),))

    def __call__(self, n: np.ndarray | float) -> np.ndarray | float:
        out = np.interp(np.log(np.asarray(n, np.float64)), self.log_n, self.k)
        return float(out) if np.ndim(out) == 0 else out

    @property
    def median(self) -> float:
        return float(np.median(self.k))

    def to_dict(self) -> dict:
        return {"N": [float(np.exp(x)) for x in self.log_n], "k": list(self.k)}


def as_flops_per_parameter(k: "float | FlopsPerParameter") -> FlopsPerParameter:
    return k if isinstance(k, FlopsPerParameter) else FlopsPerParameter.constant(k)


def measure_k(points: pd.DataFrame) -> FlopsPerParameter:
    """k = C / (N D) per model size, the median over that size's runs."""
    n = points["N"].to_numpy(float)
    ratio = points["C"].to_numpy(float) / (n * points["D"].to_numpy(float))
    ok = np.isfinite(ratio) & (ratio > 0)
    if not ok.any():
        raise ValueError("cannot measure k = C / (N D): no run has positive N, D and C")
    sizes = np.unique(n[ok])
    return FlopsPerParameter(tuple(float(np.log(s)) for s in sizes),
                             tuple(float(np.median(ratio[ok][n[ok] == s])) for s in sizes))


def estimate_k(points: pd.DataFrame) -> float:
    """FLOPs per parameter per example, C / (N D), measured on the runs (median)."""
    return measure_k(points).median


def _to_points(rows: pd.DataFrame, metric: str, param_count: str, data_unit: str) -> pd.DataFrame:
    n_column = "N" if param_count == "total" else "N_nonembedding"
    d_column = "D" if data_unit == "examples" else "tokens"
    out = pd.DataFrame({
        "run": rows["cell"].to_numpy(), "N": rows[n_column].to_numpy(float),
        "D": rows[d_column].to_numpy(float), "C": rows["C"].to_numpy(float),
        "budget": rows["budget"].to_numpy(float), "loss": rows[metric].to_numpy(float),
        "alpha": rows["alpha"].to_numpy(float), "seed": rows["seed"].to_numpy(float),
        "cell": rows["cell"].to_numpy(), "preset": rows["preset"].to_numpy(),
        "step": rows["step"].to_numpy()})
    return out.reset_index(drop=True)


def _metric_columns(frame: pd.DataFrame) -> list[str]:
    fixed = set(METRICS_REQUIRED) | {"cell", "preset", "N", "N_nonembedding", "budget", "alpha", "seed",
                                     "steps", "status", "C", "D"}
    return [c for c in frame.columns if c not in fixed]


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {list(allowed)}")
